"""Data files shipped with mlproj: mlproject.schema.json (draft 2020-12)."""
