-- Run once by the postgres image when its data volume is new (/docker-entrypoint-initdb.d):
-- the databases docker-compose.yml's services use beside POSTGRES_DB (tailor: events and
-- the MLflow backend). The PII store lives in a database of its own so that its access can
-- be granted apart.
CREATE DATABASE tailor_pii;
