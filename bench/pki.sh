# bench/pki.sh — sourced by the bench scripts: the endorser PKI they share.
# shellcheck shell=bash

# make_endorser_pki: in $PKI, an RSA-2048 CA ($CA_SUBJ), an endorser
# certificate ($EE_SUBJ, serial 4097), a second one revoked (4098) and the
# CA's CRL listing it (ca.crl), all with real OpenSSL.
make_endorser_pki() {
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
		-keyout "$PKI/ca.key" -out "$PKI/ca.pem" -subj "$CA_SUBJ" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
	cat >"$PKI/endorser.ext" <<-'EOF'
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature,nonRepudiation,keyEncipherment
		extendedKeyUsage = emailProtection,clientAuth
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
	EOF
	openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/endorser.key" \
		-out "$PKI/endorser.csr" -subj "$EE_SUBJ"
	openssl x509 -req -sha256 -days 365 -in "$PKI/endorser.csr" -CA "$PKI/ca.pem" \
		-CAkey "$PKI/ca.key" -set_serial 4097 -extfile "$PKI/endorser.ext" -out "$PKI/endorser.pem"
	# A second endorser, revoked, so the CRL has an entry to search.
	openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/revoked.key" \
		-out "$PKI/revoked.csr" -subj "/DC=org/DC=vmtrust-bench/O=Bench Site/CN=Revoked Endorser"
	openssl x509 -req -sha256 -days 365 -in "$PKI/revoked.csr" -CA "$PKI/ca.pem" \
		-CAkey "$PKI/ca.key" -set_serial 4098 -extfile "$PKI/endorser.ext" -out "$PKI/revoked.pem"
	: >"$PKI/index.txt"
	echo 01 >"$PKI/crlnumber"
	cat >"$PKI/ca.cnf" <<-EOF
		[ ca ]
		default_ca = bench
		[ bench ]
		database = $PKI/index.txt
		crlnumber = $PKI/crlnumber
		certificate = $PKI/ca.pem
		private_key = $PKI/ca.key
		default_md = sha256
		default_crl_days = 30
	EOF
	openssl ca -batch -config "$PKI/ca.cnf" -revoke "$PKI/revoked.pem" -crl_reason keyCompromise
	openssl ca -batch -config "$PKI/ca.cnf" -gencrl -out "$PKI/ca.crl"
}

# make_trust_dir: lays out $CADIR in the IGTF form (HASH.0, HASH.r0,
# HASH.signing_policy) from the PKI in $PKI, and sets CA_HASH, ENDORSER_DN and
# ENDORSER_CA (OpenSSL oneline form, what hv:dn and hv:ca must carry).
make_trust_dir() {
	CA_HASH=$(openssl x509 -noout -hash -in "$PKI/ca.pem")
	local crl_hash
	crl_hash=$(openssl crl -noout -hash -in "$PKI/ca.crl")
	[[ $CA_HASH == "$crl_hash" ]] || die "CA hash $CA_HASH differs from CRL hash $crl_hash"
	cp "$PKI/ca.pem" "$CADIR/$CA_HASH.0"
	cp "$PKI/ca.crl" "$CADIR/$CA_HASH.r0"
	cat >"$CADIR/$CA_HASH.signing_policy" <<-POLICY
		access_id_CA X509 '$CA_SUBJ'
		pos_rights globus CA:sign
		cond_subjects globus '"/DC=org/DC=vmtrust-bench/*"'
	POLICY
	ENDORSER_DN=$(openssl x509 -noout -subject -nameopt compat -in "$PKI/endorser.pem")
	ENDORSER_DN=${ENDORSER_DN#subject=}
	ENDORSER_CA=$(openssl x509 -noout -issuer -nameopt compat -in "$PKI/endorser.pem")
	ENDORSER_CA=${ENDORSER_CA#issuer=}
}
