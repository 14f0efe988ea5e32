#!/bin/sh
# Pulls IMAGE in a loop until STOP_FILE exists or MAX_SECONDS have passed; between two pulls, three
# HTTPS requests to /v2/ (a 401 is an answer) sample the registry more often. One line per try in
# LOG: "ok <kind> <time> <seconds>" or "FAIL <kind> <time> <seconds> <message>" (time: when the try
# ended, in seconds since the epoch, so the scenario can place each try against the registry's
# restart; seconds: how long it took), then "end". A pull of an image already present still asks
# the registry for its manifest: a refused or cut connection fails it at once.
# A pull is cut after 300 s only so that the loop goes on and ends: how long a pull takes is not
# the verdict. A pull of 10 s or more also logs the CPU and I/O pressure (the share of the last 10 s
# in which some task waited, /proc/pressure: the node shares the host's kernel). A pull's time is
# the node's docker daemon as much as the registry's: with the host's disk writing back 12 GB,
# pulls took up to 5 s (0.4 s idle) while /v2/ answered in 20-100 ms (eight busy loops on the
# host's CPUs changed neither). In CI runs beside the other tests, one pull went past the 45 s this
# script allowed before. It started 22 s after the registry was back, and the three /v2/ requests
# after it took under a second together. Others took 55 s, and 121 s while the VM itself stalled
# (the kernel logged workqueue lockups of 30-84 s).
# Usage: pull_watch.sh IMAGE LOG STOP_FILE MAX_SECONDS CA_FILE
image=$1 log=$2 stop=$3 max=$4 ca=$5
registry=${image%%/*}
end=$(($(date +%s) + max))
# Seconds since $1 (a date +%s.%N).
since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }
# " cpu <some avg10> io <some avg10>" when $1 (seconds) is 10 or more.
pressure() {
    case $1 in [0-9][0-9]*.*) ;; *) return 0 ;; esac
    for kind in cpu io; do
        printf ' %s %s' "$kind" "$(awk '/^some/ { sub("avg10=", "", $2); print $2 }' "/proc/pressure/$kind" 2>/dev/null || echo -)"
    done
}
: > "$log"
while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
    start=$(date +%s.%N)
    if out=$(timeout 300 docker pull -q "$image" 2>&1); then
        took=$(since "$start")
        echo "ok pull $(date +%s.%N) $took$(pressure "$took")" >> "$log"
    else
        rc=$? took=$(since "$start")
        echo "FAIL pull $(date +%s.%N) $took exit $rc$(pressure "$took") $(echo "$out" | tr '\n' ' ')" >> "$log"
    fi
    for _ in 1 2 3; do
        # curl times itself: "<code> <seconds>"
        answer=$(curl -s -o /dev/null -m 10 -w '%{http_code} %{time_total}' --cacert "$ca" "https://$registry/v2/")
        code=${answer% *} took=${answer#* }
        if [ "$code" = 401 ]; then
            echo "ok v2 $(date +%s.%N) $took" >> "$log"
        else
            echo "FAIL v2 $(date +%s.%N) $took HTTP $code" >> "$log"
        fi
        sleep 0.1
    done
done
echo end >> "$log"
