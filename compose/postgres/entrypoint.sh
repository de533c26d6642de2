#!/bin/sh
# Entrypoint of tunnelmesh/postgres (see Dockerfile): initialise the data
# directory once, with a random password for the user tunnelmesh written to
# /secrets/postgres.password, then run the server.
set -eu
bin=@PGBIN@
data=/var/lib/postgresql/data
pwfile=/secrets/postgres.password
if [ ! -s "$data/PG_VERSION" ]; then
	umask 077
	if [ ! -s "$pwfile" ]; then
		od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$pwfile.tmp"
		# The registries (another user) read it; only they mount /secrets.
		chmod 644 "$pwfile.tmp"
		mv "$pwfile.tmp" "$pwfile"
	fi
	"$bin/initdb" -D "$data" -U tunnelmesh --pwfile="$pwfile" --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
		-E UTF8 --locale=C >/dev/null
	echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
	"$bin/postgres" --single -D "$data" postgres <<SQL >/dev/null
CREATE DATABASE tunnelmesh OWNER tunnelmesh;
SQL
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
