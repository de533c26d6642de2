#!/bin/sh
# tunnelmesh-tokens N [EXPIRY]: print N new single-use join tokens, valid for
# EXPIRY (default 1h), as a JSON list, for TF_VAR_join_tokens.
set -eu
n=${1:?usage: tunnelmesh-tokens N [EXPIRY]}
expiry=${2:-1h}
sep=
printf '['
i=0
while [ "$i" -lt "$n" ]; do
	tok=$(tunnelmesh admin --config /etc/tunnelmesh/coordinator.yaml tokens create --expiry "$expiry")
	printf '%s"%s"' "$sep" "$tok"
	sep=,
	i=$((i + 1))
done
printf ']\n'
