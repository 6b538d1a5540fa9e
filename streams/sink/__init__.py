"""The PostgreSQL sink and the database's migrations."""
