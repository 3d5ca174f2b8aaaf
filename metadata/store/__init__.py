"""Storage: the SQL schema, one-statement slice reads, transactional writes, migrations."""
