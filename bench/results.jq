# results.jq -- turns bench results (one JSON object per run, slurped with
# jq -s) into bench/RESULTS.md. Called by scripts/bench.sh, which passes
# the machine description and the headline concurrencies as --arg.

def rec($l): map(select(.label == $l)) | first;
def runs($p): map(select(.label | test("^" + $p + "-c[0-9]+$"))) | sort_by(.concurrency);
def best($p): runs($p) | max_by(.sagas_per_s);

# 12345.6 -> "12,346"
def th: if . == null then "-"
        elif . < 0 then "-" + (-. | th)
        elif . >= 1000 then ((. / 1000 | floor) | th) + "," +
             ((. | floor) % 1000 | tostring | if length == 1 then "00" + . elif length == 2 then "0" + . else . end)
        else (. | round | tostring) end;
def d($n): if . == null then "-" else (. * pow(10; $n) | round) / pow(10; $n) | tostring end;
def pct: if . == null then "-" else (. * 100 | round | tostring) + " %" end;
def lat: "\(.p50 | d(3)) / \(.p99 | d(3)) / \(.p999 | d(3))";
def mib: if . == null then "-" else (. / 1024 | d(1)) end;
# the hypervisor's steal during the run, in % of the machine's CPU time
def steal: if .host_steal_pct == null then "-" else (.host_steal_pct | d(1)) + " %" end;
# every run of a repeated point: "12,345 · 13,002 · 12,870"
def reps: if .repeats == null then "-" else (.repeats | map(th) | join(" · ")) end;

# When an open-loop run's slow steps happened (its step_timeline): the
# share of them in the worst 5 % of its windows, and those windows.
def tail_shape:
  .step_timeline as $t
  | if $t == null then null else
      ($t.windows | to_entries | map({i: .key, n: .value[0], over: .value[1], max: .value[2]})) as $w
      | (($w | length) / 20 | ceil) as $k
      | ($w | sort_by(-.over)) as $worst
      | {steps: ($w | map(.n) | add), over: ($w | map(.over) | add), windows: ($w | length),
         k: $k, in_worst: ($worst[0:$k] | map(.over) | add), top: ($worst[0:5] | map(select(.over > 0))),
         width: $t.window_ms, over_ms: $t.over_ms}
    end;
def tail_row($name):
  tail_shape as $s
  | if $s == null then "| \($name) | - | - | - | - |"
    else "| \($name) | \($s.steps | th) | \($s.over | th) (\(if $s.steps > 0 then ($s.over / $s.steps * 100 | d(2)) else "-" end) %) | \(if $s.over > 0 then ($s.in_worst / $s.over * 100 | round | tostring) + " %" else "-" end) (\($s.k) of \($s.windows)) | \($s.top | map("\(.i * $s.width / 1000 | d(2)) s: \(.over | th) of \(.n | th), max \(.max | d(1)) ms") | join(" · ")) |"
    end;

# PASS/MISS with the margin. $hi: higher is better.
def verdict($v; $goal; $hi):
  if $v == null then "n/a"
  elif $hi then
    (if $v >= $goal then "**PASS** (+\((($v / $goal - 1) * 100) | round) %)"
     else "**MISS** by \(((1 - $v / $goal) * 100) | round) % (needs ×\(($goal / $v) | d(2)))" end)
  else
    (if $v <= $goal then "**PASS** (\(((1 - $v / $goal) * 100) | round) % under)"
     else "**MISS** by \((($v / $goal - 1) * 100) | round) % (×\(($v / $goal) | d(2)) the goal)" end)
  end;

. as $all
| ($best_e | tonumber) as $be
| ($best_a | tonumber) as $ba
| best("everysec") as $E
| best("always") as $A
| ($all | map(select(.label | test("^mem-[^.]*$"))) | max_by(.steps_per_s)) as $M
| rec("ceil-everysec-c\($be)") as $CE
| ([$all[] | select(.label | test("^ceil-everysec-c\($be)(-x[0-9]+)?$"))] | max_by(.fcall_per_s)) as $CEmax
| rec("everysec-half") as $H
| rec("everysec-half-noaof") as $HN
| rec("everysec-half-fresh") as $HF
| rec("everysec-half-probe") as $HP
| rec("everysec-half-noaof-probe") as $HNP
| rec($H.run | sub("\\.run"; "-redis.run")) as $HR
| rec($HN.run | sub("\\.run"; "-redis.run")) as $HNR
| rec("inflight-redis") as $IR
| rec("inflight-memory") as $IM
| rec("takeover") as $T
|
"# saga benchmark results

Written by `\($cmd)` on \($date)\(if $quick == "1" then " — **QUICK smoke run: the figures are not meaningful**" else "" end).
What each figure means: [docs/benchmarks.md](../docs/benchmarks.md). Raw figures
(one JSON object per run): [results.jsonl](results.jsonl).

| machine | |
|---|---|
| CPU | \($cpu), \($nproc) cores (engine, Redis and redis-benchmark share them) |
| memory | \($mem) |
| kernel | \($kernel) |
| Redis | \($redis) |
| compiler | \($cc) (Release build, `build-bench/`) |
| engine commit | \($commit) |
| load average (1/5/15 min) | \($load) |
| reproduce | `\($cmd)` |

## Targets

| target (issue 7) | goal | measured | verdict |
|---|---|---|---|
| Redis AOF everysec, 3-step noop sagas/s | ≥ 15,000 | \($E.sagas_per_s | th) (c=\($be)) | \(verdict($E.sagas_per_s; 15000; true)) |
| checkpoint writes / redis-benchmark ceiling (same c) | ≥ 50 % | \($E.transitions_per_s | th) / \($CE.fcall_per_s | th) FCALL/s = \(($E.transitions_per_s / $CE.fcall_per_s) | pct); vs the best split \($CEmax.fcall_per_s | th) (-c \($CEmax.clients) -P \($CEmax.pipeline)) = \(($E.transitions_per_s / $CEmax.fcall_per_s) | pct) | \(verdict($E.transitions_per_s / $CEmax.fcall_per_s; 0.5; true)) |
| Redis AOF always, 3-step noop sagas/s | ≥ 8,000 | \($A.sagas_per_s | th) (c=\($ba)) | \(verdict($A.sagas_per_s; 8000; true)) |
| memory store, noop steps/s (one core) | ≥ 500,000 | \($M.steps_per_s | th) (\($M.label)) | \(verdict($M.steps_per_s; 500000; true)) |
| per-step overhead p50, everysec at half load | ≤ 0.3 ms | \($H.latency.step_overhead_ms.p50 | d(3)) ms | \(verdict($H.latency.step_overhead_ms.p50; 0.3; false)) |
| per-step overhead p99, everysec at half load | ≤ 1 ms | \($H.latency.step_overhead_ms.p99 | d(3)) ms | \(verdict($H.latency.step_overhead_ms.p99; 1; false)) |
| engine memory per in-flight saga (RSS, 100,000 sleeping) | ≤ 2,048 B | \($IR.rss_per_inflight_saga_bytes | th) B (heap in use: \($IR.heap_per_inflight_saga_bytes | th) B) | \(verdict($IR.rss_per_inflight_saga_bytes; 2048; false)) |
| takeover of \($T.sagas | th) in-flight sagas | ≤ lease + 1 s = \($T.lease_s + 1) s | all resumed by B \($T.all_resumed_s | d(2)) s after kill -9 (all owned: \($T.all_owned_by_b_s | d(2)) s) | \(verdict($T.all_resumed_s; $T.lease_s + 1; false)) |

## Throughput against concurrency

![sagas/s against concurrency](throughput.png)

### Memory store (`keep_finished=false`, `keep_history=false`)

Transitions are computed (steps + 1 per saga), not counted. Each point is the median of its runs
(sagas/s of every run in the last column).

| c | steps | sagas | sagas/s | steps/s | transitions/s | end-to-end p50 / p99 / p99.9 ms | per-step p50 / p99 / p99.9 ms | engine CPU s / 1000 transitions | peak RSS MiB | host steal | sagas/s of each run |
|---|---|---|---|---|---|---|---|---|---|---|---|
\([$all[] | select(.label | test("^mem-[^.]*$"))] | sort_by(.steps, .concurrency) | map("| \(.concurrency) | \(.steps) | \(.sagas | th) | \(.sagas_per_s | th) | \(.steps_per_s | th) | \(.transitions_per_s | th) | \(.latency.end_to_end_ms | lat) | \(.latency.step_overhead_ms | lat) | \(.cpu_s_per_1000_transitions | d(4)) | \(.peak_rss_kib | mib) | \(steal) | \(reps) |") | join("\n"))
\(["everysec", "always"] | map(. as $f |
"
### Redis, AOF \($f)

The store's connections: \($all | runs($f) | first | .redis.connections) (docs/redis-layout.md). Ceiling: redis-benchmark with the engine's
write shape over as many connections, c outstanding (see below).
Transitions = FCALL saga_write calls the store sent (saga_store_redis_stats().writes). Each point is
the median of its runs (sagas/s of every run in the last column).

| c | sagas | sagas/s | transitions/s | ceiling FCALL/s | writes / ceiling | end-to-end p50 / p99 / p99.9 ms | per-step p50 / p99 / p99.9 ms | engine CPU s / 1000 tr. | Redis CPU µs / saga | commands / saga | round trips / saga | commands per read | peak RSS MiB | host steal | sagas/s of each run |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
" + ($all | runs($f) | map(. as $r | ($all | rec("ceil-\($f)-c\($r.concurrency)")) as $c |
"| \($r.concurrency) | \($r.sagas | th) | \($r.sagas_per_s | th) | \($r.transitions_per_s | th) | \($c.fcall_per_s | th) | \(($r.transitions_per_s / $c.fcall_per_s) | pct) | \($r.latency.end_to_end_ms | lat) | \($r.latency.step_overhead_ms | lat) | \($r.cpu_s_per_1000_transitions | d(4)) | \($r.redis.cpu_us_per_saga | d(1)) | \($r.redis.client_commands_per_saga | d(2)) | \($r.redis.round_trips_per_saga | d(2)) | \($r.redis.commands_per_read | d(1)) | \($r.peak_rss_kib | mib) | \($r | steal) | \($r | reps) |") | join("\n"))) | join("\n"))

## The ceiling

\($shape)

The chosen write is sent as a create (flags `c..`) of a new random saga id each time, so Redis accepts every
call and runs the full write path (record check, HSET, RPUSH, index updates); a replayed non-create write
would be refused after its first success (the record must stand at seq − 1). Connections and pipeline:
`-c N -P c/N` with N the store's connections (\($E.redis.connections)), like the engine (at most one write per saga
in flight, so up to c outstanding over N connections). Other splits of the same c outstanding requests at
c=\($be) (everysec):

| redis-benchmark | FCALL/s | p50 ms | p99 ms |
|---|---|---|---|
\([$all[] | select(.label | test("^ceil-everysec-c\($be)(-x[0-9]+)?$"))] | sort_by(.clients) | map("| -c \(.clients) -P \(.pipeline) -n \(.requests | th) | \(.fcall_per_s | th) | \(.p50_ms) | \(.p99_ms) |") | join("\n"))

## Per-step overhead at half the maximum load

Redis AOF everysec, 3-step noop sagas started open-loop at \($H.rate_limit | th) sagas/s (half of the best
closed-loop figure, \($E.sagas_per_s | th) at c=\($be); at most \($H.concurrency) in flight); achieved \($H.sagas_per_s | th) sagas/s.
At steady state: finished sagas are kept \(($H.retention_ms // 0) / 1000) s, then the store's GC deletes them (\($H.redis.gc_removed_per_saga | d(2))
deleted per saga started while measuring), after \($H.warmup | th) sagas of warm-up at the same rate, so that the
keyspace holds its size as on a production server with a retention. The same rate on a server emptied just
before (2,000 sagas of warm-up, the keyspace growing through the run) is the *fresh server* row.
Of \($H.repeats | length) runs, the one with the median per-step p99 (every run's p99 in ms: \($H.repeats | map(d(3)) | join(" · ")); AOF off:
\($HN.repeats | map(d(3)) | join(" · ")); fresh server: \($HF.repeats // [] | map(d(3)) | join(" · "))).

| latency | p50 | p99 | p99.9 | max | mean |
|---|---|---|---|---|---|
| per-step overhead (ms) | \($H.latency.step_overhead_ms.p50 | d(3)) | \($H.latency.step_overhead_ms.p99 | d(3)) | \($H.latency.step_overhead_ms.p999 | d(3)) | \($H.latency.step_overhead_ms.max | d(3)) | \($H.latency.step_overhead_ms.mean | d(3)) |
| create: start → first step called (ms) | \($H.latency.create_ms.p50 | d(3)) | \($H.latency.create_ms.p99 | d(3)) | \($H.latency.create_ms.p999 | d(3)) | \($H.latency.create_ms.max | d(3)) | \($H.latency.create_ms.mean | d(3)) |
| end to end (ms) | \($H.latency.end_to_end_ms.p50 | d(3)) | \($H.latency.end_to_end_ms.p99 | d(3)) | \($H.latency.end_to_end_ms.p999 | d(3)) | \($H.latency.end_to_end_ms.max | d(3)) | \($H.latency.end_to_end_ms.mean | d(3)) |
| *diagnostic: per-step overhead, same rate, fresh server* | \($HF.latency.step_overhead_ms.p50 | d(3)) | \($HF.latency.step_overhead_ms.p99 | d(3)) | \($HF.latency.step_overhead_ms.p999 | d(3)) | \($HF.latency.step_overhead_ms.max | d(3)) | \($HF.latency.step_overhead_ms.mean | d(3)) |
| *diagnostic: per-step overhead, same rate, AOF off* | \($HN.latency.step_overhead_ms.p50 | d(3)) | \($HN.latency.step_overhead_ms.p99 | d(3)) | \($HN.latency.step_overhead_ms.p999 | d(3)) | \($HN.latency.step_overhead_ms.max | d(3)) | \($HN.latency.step_overhead_ms.mean | d(3)) |
| *diagnostic: Redis PING round trip, a run of its own at the same rate (ms)* | \($HP.redis_ping_ms.p50 | d(3)) | \($HP.redis_ping_ms.p99 | d(3)) | \($HP.redis_ping_ms.p999 | d(3)) | \($HP.redis_ping_ms.max | d(3)) | \($HP.redis_ping_ms.mean | d(3)) |
| *diagnostic: Redis PING round trip, the same with the AOF off (ms)* | \($HNP.redis_ping_ms.p50 | d(3)) | \($HNP.redis_ping_ms.p99 | d(3)) | \($HNP.redis_ping_ms.p999 | d(3)) | \($HNP.redis_ping_ms.max | d(3)) | \($HNP.redis_ping_ms.mean | d(3)) |

A step's overhead is one checkpoint write (the step's result and the next step's start) plus the
engine's own work; the PING rows are what any client of the same Redis waited for a trivial command
under the same load (one PING per ms from a separate connection and thread): the floor that the
server and this machine set, whatever the engine does. They come from one more run at the same
settings (per-step p50 / p99 in it: \($HP.latency.step_overhead_ms.p50 | d(3)) / \($HP.latency.step_overhead_ms.p99 | d(3)) ms; AOF off \($HNP.latency.step_overhead_ms.p50 | d(3)) / \($HNP.latency.step_overhead_ms.p99 | d(3)) ms), not from
the reported runs: the probe's 1,000 lone PINGs a second wake Redis on their own.

When the slow steps happened: each run is cut into windows of \($H.step_timeline.window_ms // "-") ms from the start of its measured
phase; a step over \($H.step_timeline.over_ms // "-") ms counts as slow. A tail spread evenly would put about 5 % of the slow steps in
the worst 5 % of the windows; a tail packed into them is a few events, not the steady state (docs/benchmarks.md
section Half the maximum load says what they were when traced).

| run | steps | slow | slow steps in the worst 5 % of windows | the worst windows (start: slow of steps, max) |
|---|---|---|---|---|
\($H | tail_row("AOF everysec (reported)"))
\($HN | tail_row("AOF off (diagnostic)"))
\($HF | tail_row("fresh server (diagnostic)"))

Every half-load run, with the CPU time the hypervisor kept from this VM while it ran (`steal` in
/proc/stat, in % of both CPUs' time), to read beside its tail.

| run | per-step p50 / p99 / p99.9 ms | Redis CPU µs / saga | host steal | slow steps in the worst 5 % of windows |
|---|---|---|---|---|
\($all | map(select(.label | test("^everysec-half(-noaof|-fresh)?(\\.run[0-9]+|-probe)$"))) | map("| \(.label) | \(.latency.step_overhead_ms | lat) | \(.redis.cpu_us_per_saga | d(1)) | \(steal) | \(tail_shape as $t | if $t == null or $t.over == 0 then "-" else ($t.in_worst / $t.over * 100 | round | tostring) + " %" end) |") | join("\n"))

What Redis's latency monitor (`latency-monitor-threshold 1`) recorded during the reported run, its warm-up included (events of 1 ms
or more; `LATENCY LATEST`), and `aof_delayed_fsync` (writes that waited for a slow background fsync):

| run | events (latest / max ms) | aof_delayed_fsync |
|---|---|---|
| AOF everysec | \($HR.events | map("\(.event) \(.latest_ms)/\(.max_ms)") | join(", ") | if . == "" then "none" else . end) | \($HR.aof_delayed_fsync) |
| AOF off | \($HNR.events | map("\(.event) \(.latest_ms)/\(.max_ms)") | join(", ") | if . == "" then "none" else . end) | \($HNR.aof_delayed_fsync) |

## Memory per in-flight saga

\($IR.sagas | th) sagas of one `demo.sleep` step (600 s), all in flight on one engine (allocator:
\($IR.allocator // "glibc")). RSS from /proc/self/statm: before the first start; at once, when the last
first step was called; then \($IR.rss_settle_ms // 0) ms later, which is the figure (the start burst's requests,
replies and output buffer are free by then and the allocator has returned their pages: its decay time
is 1 s, engine/src/malloc_conf.c); then after the allocator was told to return every free page
(what is left is live data plus fragmentation). Heap = bytes allocated and not freed (jemalloc
`stats.allocated`), which leaves fragmentation out. Sagas are started 500 per loop turn, as a worker
takes them from its intake; Redis acknowledges slower than they start, so their first writes pile up
in memory: that burst is the peak RSS.

| store | sagas | RSS before MiB | RSS in flight MiB | RSS / saga B | at once B | after returning free pages B | heap / saga B | peak RSS MiB | time to start all s |
|---|---|---|---|---|---|---|---|---|---|
\([$IR, $IM] | map("| \(.store) | \(.sagas | th) | \(.rss_before_kib | mib) | \(.rss_inflight_kib | mib) | \(.rss_per_inflight_saga_bytes | th) | \(.rss_per_inflight_saga_at_once_bytes | th) | \(.rss_per_inflight_saga_after_trim_bytes | th) | \(.heap_per_inflight_saga_bytes | th) | \(.peak_rss_kib | mib) | \(.elapsed_s | d(2)) |") | join("\n"))

The memory store also holds every unfinished record in the process; the Redis figure is the engine's own.

## Takeover

Two real `saga worker` processes (`--lease \($T.lease_s)s --concurrency 20000`) on one Redis (AOF everysec).
\($T.sagas | th) sagas (one 180 s `demo.sleep` step) submitted with `FCALL saga_submit`, all running on A;
B started and heartbeating; then `kill -9` A.

| figure | seconds after kill -9 |
|---|---|
| first saga in B's owned set | \($T.first_claim_s | d(3)) |
| all \($T.owned_by_b | th) in B's owned set (`SCARD saga:{idx}:owned:B`, polled every 20 ms) | \($T.all_owned_by_b_s | d(3)) |
| all resumed: B's `saga.resumed` entry in the history of \($T.resumed_by_b | th) records (owner B: \($T.owner_field_b | th)); the latest entry's time | \($T.all_resumed_s | d(3)) |
| goal: lease + 1 s | \($T.lease_s + 1) |

## Redis cost per saga (AOF everysec, c=\($be))

`INFO commandstats` deltas over the measured window. FCALL's time includes the commands it calls,
which Redis 7 also counts under their own names. Redis CPU (`used_cpu_user + used_cpu_sys`) per saga:
\($E.redis.cpu_us_per_saga | d(1)) µs; FCALL time per saga: \($E.redis.fcall_usec_per_saga | d(1)) µs; bytes received per saga:
\($E.redis.input_bytes_per_saga | th); commands per read(2): \($E.redis.commands_per_read | d(1)).

| command | calls / saga | µs / call |
|---|---|---|
\($E.redis.commandstats | to_entries | sort_by(-(.value.calls_per_saga * .value.usec_per_call)) | map("| \(.key) | \(.value.calls_per_saga | d(2)) | \(.value.usec_per_call | d(2)) |") | join("\n"))
"
