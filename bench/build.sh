# bench/build.sh — sourced by the bench scripts: building what they time.
# shellcheck shell=bash
# Needs from the caller: $ROOT (the repository), $BENCH_DIR, log, die.

# build OUT PKG: go build -o OUT PKG in $ROOT. Other people may be editing
# the Go packages concurrently: a briefly broken tree is retried a few times.
build() {
	local out=$1 pkg=$2 try
	for try in 1 2 3 4 5; do
		if (cd "$ROOT" && go build -o "$out" "$pkg") 2>"$BENCH_DIR/build.log"; then
			return 0
		fi
		log "go build $pkg failed (attempt $try), retrying in 60 s:"
		sed 's/^/    /' "$BENCH_DIR/build.log" >&2
		sleep 60
	done
	die "go build $pkg"
}
