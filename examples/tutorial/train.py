"""Train a small linear model on data.csv and log it to the active MLflow run."""
import argparse

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.model_selection import train_test_split


def train_model(data_path: str, alpha: float, max_iter: int) -> float:
    data = pd.read_csv(data_path)
    X = data[['feature1', 'feature2']]
    y = data['target']
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)

    mlflow.log_param('alpha', alpha)
    mlflow.log_param('max_iter', max_iter)

    model = ElasticNet(alpha=alpha, max_iter=max_iter, random_state=42)
    model.fit(X_train, y_train)

    score = model.score(X_test, y_test)
    mlflow.log_metric('r2_score', score)
    mlflow.sklearn.log_model(model, name='model', serialization_format='cloudpickle')
    print(f'Model trained with R2 score: {score:.4f}')
    return score


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--data_path', default='data.csv', help='Path to the training data CSV file.')
    parser.add_argument('--alpha', type=float, default=0.5, help='Regularization strength.')
    parser.add_argument('--max_iter', type=int, default=100, help='Maximum iterations for the optimizer.')
    args = parser.parse_args()

    with mlflow.start_run():
        train_model(args.data_path, args.alpha, args.max_iter)
