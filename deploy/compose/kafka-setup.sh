#!/bin/sh
# The compose Kafka's security, made before the broker first starts (service kafka-setup, docker-compose.yml). Run
# as root in the apache/kafka image; every step is skipped when its result is already there, so it runs at every
# `up` and changes nothing after the first.
#
# 1. A CA of its own and the broker's certificate (CN and SAN `kafka`, the name clients dial, and `localhost`, for
#    the health check), made with keytool: the image has Java's keytool and no openssl. The broker's PKCS#12
#    keystore and its password files go to $SECRETS (the image reads them from there: KAFKA_SSL_KEYSTORE_*), the
#    CA's certificate alone to $CA, the volume that clients mount read-only (PATROL_KAFKA_SSL_CAFILE). The CA's key
#    stays in $SECRETS, which only the broker and the `topics` job mount.
# 2. The broker's JAAS file (its own login on its SASL_SSL listener, as the super user `admin`) and the admin
#    client's properties for the health check and the `topics` job.
# 3. The storage formatted (KRaft) with the SCRAM-SHA-512 credentials of `admin` and of every principal in
#    $SCRAM_USERS, each with the password in <PRINCIPAL>_PASSWORD (upper case, `-` as `_`). Credentials are added at
#    format time only: a password changed later is changed with kafka-configs.sh --alter --add-config.
set -eu

SECRETS=${SECRETS:-/etc/kafka/secrets}
CA=${CA:-/etc/kafka/ca}
DATA=${KAFKA_LOG_DIRS:-/var/lib/kafka/data}
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
OWNER=${OWNER:-appuser}  # the image's user, who runs the broker

if [ ! -s "$SECRETS/kafka.p12" ]; then
  echo "kafka-setup: a new CA and broker certificate"
  pass=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  rm -f "$SECRETS/ca.p12" "$SECRETS/kafka.p12"
  keytool -genkeypair -noprompt -alias ca -dname "CN=patrol-dispatch compose CA" -keyalg RSA -keysize 2048 \
    -validity 3650 -ext bc:c -ext KU=keyCertSign,cRLSign -storetype PKCS12 -keystore "$SECRETS/ca.p12" -storepass "$pass"
  keytool -exportcert -rfc -alias ca -keystore "$SECRETS/ca.p12" -storepass "$pass" -file "$SECRETS/ca.crt"
  keytool -genkeypair -noprompt -alias kafka -dname "CN=kafka" -keyalg RSA -keysize 2048 -validity 825 \
    -storetype PKCS12 -keystore "$SECRETS/kafka.p12" -storepass "$pass"
  keytool -certreq -alias kafka -keystore "$SECRETS/kafka.p12" -storepass "$pass" -file "$SECRETS/kafka.csr"
  keytool -gencert -rfc -alias ca -keystore "$SECRETS/ca.p12" -storepass "$pass" -validity 825 \
    -ext SAN=dns:kafka,dns:localhost -ext KU=digitalSignature,keyEncipherment -ext EKU=serverAuth,clientAuth \
    -infile "$SECRETS/kafka.csr" -outfile "$SECRETS/kafka.crt"
  keytool -importcert -noprompt -alias ca -file "$SECRETS/ca.crt" -keystore "$SECRETS/kafka.p12" -storepass "$pass"
  keytool -importcert -noprompt -alias kafka -file "$SECRETS/kafka.crt" -keystore "$SECRETS/kafka.p12" -storepass "$pass"
  rm -f "$SECRETS/kafka.csr"
  printf '%s' "$pass" > "$SECRETS/keystore-creds"
  printf '%s' "$pass" > "$SECRETS/key-creds"  # PKCS#12: the key's password is the store's
fi
mkdir -p "$CA"
cp "$SECRETS/ca.crt" "$CA/ca.crt"
chmod 0644 "$CA/ca.crt"

: "${ADMIN_PASSWORD:?the super user admin needs a password (KAFKA_ADMIN_PASSWORD)}"
login="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$ADMIN_PASSWORD\";"
printf 'KafkaServer {\n  %s\n};\n' "$login" > "$SECRETS/kafka_server_jaas.conf"
cat > "$SECRETS/admin.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$login
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/ca.crt
PROPERTIES

if [ ! -f "$DATA/meta.properties" ]; then
  echo "kafka-setup: formatting the storage with the SCRAM users admin $SCRAM_USERS"
  set -- --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]"
  for user in $SCRAM_USERS; do
    variable=$(printf '%s_PASSWORD' "$user" | tr 'a-z-' 'A-Z_')
    eval "password=\${$variable:-}"
    [ -n "$password" ] || { echo "kafka-setup: $variable is empty" >&2; exit 1; }
    set -- "$@" --add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
  done
  # the broker's own settings, as far as formatting reads them (the broker then finds the storage formatted)
  cat > /tmp/format.properties <<PROPERTIES
process.roles=$KAFKA_PROCESS_ROLES
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_CONTROLLER_QUORUM_VOTERS
controller.listener.names=$KAFKA_CONTROLLER_LISTENER_NAMES
listeners=$KAFKA_LISTENERS
advertised.listeners=$KAFKA_ADVERTISED_LISTENERS
listener.security.protocol.map=$KAFKA_LISTENER_SECURITY_PROTOCOL_MAP
inter.broker.listener.name=$KAFKA_INTER_BROKER_LISTENER_NAME
sasl.enabled.mechanisms=$KAFKA_SASL_ENABLED_MECHANISMS
sasl.mechanism.inter.broker.protocol=$KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL
log.dirs=$DATA
PROPERTIES
  "$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config /tmp/format.properties "$@"
fi

chown -R "$OWNER" "$SECRETS" "$DATA"
chmod 0600 "$SECRETS"/*.p12 "$SECRETS"/*-creds "$SECRETS/kafka_server_jaas.conf" "$SECRETS/admin.properties"
