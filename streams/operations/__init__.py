"""Running the system: the embedded broker and database, the Kafka cluster for tests, access control, dashboards, schemas and the publish tool."""
