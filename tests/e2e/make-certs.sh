#!/bin/bash
# Certificates for the TLS tests, made fresh in DIR (nothing is kept in the
# repository): a CA; a server certificate for 127.0.0.1 and 10.77.0.2 (the
# test hosts); a client certificate; one revoked in the CA's CRL; one from
# another CA (a peer that lies about who it is); and a server certificate
# for some other address.
set -euo pipefail
D=$1
mkdir -p "$D"
cd "$D"
ec() { echo "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"; }
exts="basicConstraints=CA:FALSE
keyUsage=digitalSignature
extendedKeyUsage=serverAuth,clientAuth"
make_ca() {  # NAME
  openssl req -x509 $(ec) -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=criu-lite test $1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign 2>/dev/null
}
make_cert() {  # NAME CA CN [SAN]
  openssl req $(ec) -keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
  printf '%s\n%s\n' "$exts" "${4:+subjectAltName=$4}" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" \
    -days 2 -extfile "$1.ext" 2>/dev/null
}
make_ca ca
make_ca rogue-ca
make_cert server ca 10.77.0.2 "IP:10.77.0.2,IP:127.0.0.1"
make_cert client ca criu-lite-client
make_cert revoked ca criu-lite-revoked
make_cert liar rogue-ca criu-lite-client
make_cert elsewhere ca 10.9.9.9 "IP:10.9.9.9"
# The CA revokes one client certificate.
mkdir -p db
: > db/index.txt
echo 01 > db/crlnumber
cat > ca.cnf <<CNF
[ ca ]
default_ca = test
[ test ]
database = $D/db/index.txt
crlnumber = $D/db/crlnumber
default_md = sha256
default_crl_days = 2
certificate = $D/ca.pem
private_key = $D/ca.key
CNF
openssl ca -config ca.cnf -revoke revoked.pem 2>/dev/null
openssl ca -config ca.cnf -gencrl -out crl.pem 2>/dev/null
chmod 600 ./*.key
