"""Data files shipped with mlproj: mlproject.schema.json (JSON Schema draft-07, valid in Ajv
strict mode as SchemaStore checks it)."""
