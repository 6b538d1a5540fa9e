"""What every service runs on: the Kafka clients and topics, the consumer loop and its error policy, health, metrics and logs."""
