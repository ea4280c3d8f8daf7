"""`flask --app app db upgrade | check | import-legacy` (cli.py): the schema and the data of
docs/contract.md §12. schema_check.py is db check's reading of the catalogue; legacy_source.py,
legacy_values.py and legacy_import.py are db import-legacy (read the original CRM, convert its values,
write Kontak's tables)."""
