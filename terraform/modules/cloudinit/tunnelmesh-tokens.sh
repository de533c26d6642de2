#!/bin/sh
# tunnelmesh-tokens N [EXPIRY]: print N new single-use join tokens, valid for
# EXPIRY (default 1h), as a JSON list, for TF_VAR_join_tokens. Waits for
# cloud-init to finish and for the coordinator to answer (up to 2 minutes).
set -eu
n=${1:?usage: tunnelmesh-tokens N [EXPIRY]}
expiry=${2:-1h}
[ "$n" -ge 1 ] 2>/dev/null || { echo "tunnelmesh-tokens: N must be a number, at least 1" >&2; exit 2; }
if command -v cloud-init >/dev/null 2>&1; then
	cloud-init status --wait >/dev/null || true
fi
create() {
	tunnelmesh admin --config /etc/tunnelmesh/coordinator.yaml tokens create --expiry "$expiry"
}
i=0
until tok=$(create 2>/dev/null); do
	i=$((i + 1))
	if [ "$i" -ge 240 ]; then
		create >/dev/null # its error, on stderr
		exit 1
	fi
	sleep 0.5
done
printf '["%s"' "$tok"
i=1
while [ "$i" -lt "$n" ]; do
	printf ',"%s"' "$(create)"
	i=$((i + 1))
done
printf ']\n'
