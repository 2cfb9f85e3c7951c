#!lua name=saga
--
-- saga.lua -- the server side of saga's Redis store: one Redis 7 Function
-- library, loaded by the engine when a server does not run this build of
-- it yet (saga_library below; functions persist with the data, so a
-- restarted server has them too).
--
-- Every key of one saga shares the hash tag of its id:
--   saga:{ID}            hash    the saga's record
--   saga:{ID}:history    list    its transitions, in order: one entry per
--                                write, "<ms>\t<seq>\t<worker>" followed by
--                                "\t<type>\t<step>\t<phase>\t<attempt>\t<detail>"
--                                per event (detail escaped: \\ \t \n \r)
-- Global keys share the hash tag {idx}, so that a function may touch
-- several of them on Redis Cluster. The index of sagas:
--   saga:{idx}:sagas     zset    every saga still retained, one entry each:
--                                score = -created (ms) while unfinished,
--                                when it expires (ms) once finished
-- so that unfinished sagas are the scores below 0 (newest first) and
-- finished ones the scores from 0 (expired ones up to now).
-- The index, the owners' sets, the orphans, the intake and the submitted
-- set exist once per shard (engine/store/shards.h: saga:{TAG}:sagas, ...,
-- a saga's entries in the shard of its id); the KEYS below name them as
-- with one shard, tag idx. A function is given one shard's keys.
--
-- Rule for every function: validate everything, then write. A script that
-- fails half-way keeps its earlier writes.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function err(code, msg)
  return redis.error_reply('SAGA' .. code .. ' ' .. msg)
end

-- Appends one history entry (a write of one event, for operator functions)
-- and keeps the list bounded.
local function history(key, now, seq, worker, etype, detail)
  redis.call('RPUSH', key, now .. '\t' .. (seq or '0') .. '\t' .. (worker or '') ..
             '\t' .. etype .. '\t\t\t0\t' .. (detail or ''))
end

-- saga_write: one transition of one saga, atomically.
--   KEYS: saga:{ID}, saga:{ID}:history
--         [saga:{idx}:sagas [saga:{idx}:owned:OWNER]]  -- see below
--   ARGV: seq prev fence wtok now flags retention_ms nfields
--         (field value)*nfields entry [id]
-- `seq` is the record's transition counter after this write; the record
-- must stand at `prev` (or not exist, for a create). `wtok` identifies this
-- write: a write resent after a lost connection finds its own token and
-- seq in the record and is acknowledged without being applied twice.
-- `fence`, when the record has one, must match: a worker whose lease was
-- taken over can no longer write. `flags` is three or four characters:
-- 'c' or '-' (a create), 't' or '-' (a finish: the saga is kept for
-- retention_ms, then saga_gc deletes it), 'r' or '-' (trim the history),
-- and 'p' or '-' (none; what engines before it send): the write settles
-- the saga (completed, compensated or stuck), so publish its id for those
-- waiting on it (store/settled.h) on the one channel saga:{idx}:settled
-- (on Redis Cluster too: a PUBLISH reaches every node over the cluster
-- bus, where `saga serve` listens; see docs/redis-layout.md). Publishing
-- costs a lookup when nobody listens (on a single Redis; every node of a
-- cluster gets the message), and a write settles a saga once: a
-- resent write that was applied already publishes nothing. The function sets seq,
-- wtok and updated (= now) itself, then the fields given; `entry` is the
-- complete history entry. Everything arrives as the strings Redis stores:
-- the function compares strings and calls commands (no number conversions
-- on the way of a step), which is most of its cost saved; every argument
-- costs too, so a write carries nothing the function can do without.
-- Returns 1 when an operator asked to cancel the saga, else 0.
local function saga_write(keys, args)
  local rec, hist = keys[1], keys[2]
  local seq, prev, fence, wtok, now, flags = args[1], args[2], args[3], args[4], args[5], args[6]
  local nfields = tonumber(args[8])
  local nargs = #args
  if not (seq and prev and fence and wtok and now and flags and nfields) or
     (nargs ~= 9 + 2 * nfields and nargs ~= 10 + 2 * nfields) or
     (#flags ~= 3 and #flags ~= 4) then
    return err('BADARGS', 'saga_write: malformed arguments')
  end
  -- A create or a finish on a single Redis is passed the index key (and the
  -- owner's set), and updates them here: one call instead of three
  -- commands. On Redis Cluster they live in another slot and the store
  -- sends plain commands around this call instead (option split_index).
  local indexed = #keys >= 3 and nargs == 10 + 2 * nfields
  local fc, ft, fr, fp = string.byte(flags, 1, 4)
  local create, terminal = fc == 99, ft == 116 -- 'c', 't'
  local expire_at
  if terminal then -- the only write that converts numbers: once per saga
    local t, keep = tonumber(now), tonumber(args[7])
    if not (t and keep and keep > 0) then
      return err('BADARGS', 'saga_write: malformed time or retention')
    end
    expire_at = t + keep
  end

  local cur = redis.call('HMGET', rec, 'seq', 'fence', 'cancel', 'wtok')
  local cancel = (cur[3] == '1') and 1 or 0
  if cur[1] and cur[1] == seq and cur[4] == wtok then
    return cancel -- this very write was applied already
  end
  if create then
    if cur[1] then
      return err('EXISTS', 'a saga with this id exists already')
    end
  else
    if not cur[1] then
      return err('NOTFOUND', 'no such saga')
    end
    if cur[2] and cur[2] ~= '' and cur[2] ~= fence then
      return err('FENCED', 'the saga is owned under fence ' .. cur[2] ..
                 ', this write carries ' .. fence)
    end
    if cur[1] ~= prev then
      return err('CONFLICT', 'record at seq ' .. cur[1] .. ', write expects ' .. prev)
    end
  end

  -- unpack() takes a few thousand values at most: big writes in chunks.
  local first, last = 9, 8 + 2 * nfields
  local stop = math.min(last, first + 999)
  redis.call('HSET', rec, 'seq', seq, 'wtok', wtok, 'updated', now, unpack(args, first, stop))
  first = stop + 1
  while first <= last do
    stop = math.min(last, first + 999)
    redis.call('HSET', rec, unpack(args, first, stop))
    first = stop + 1
  end
  redis.call('RPUSH', hist, args[9 + 2 * nfields])
  if fr == 114 then -- 'r'
    redis.call('LTRIM', hist, -100000, -1) -- a runaway retry loop stays bounded
  end
  if terminal and not indexed then
    -- On Redis Cluster saga_gc cannot reach these keys (another slot):
    -- they expire on their own. On a single Redis saga_gc deletes them with
    -- their index entry, and no saga key carries a TTL, which keeps every
    -- key lookup from a second lookup in the server's table of expiries.
    redis.call('PEXPIRE', rec, args[7])
    redis.call('PEXPIRE', hist, args[7])
  end
  if indexed then
    local id = args[10 + 2 * nfields]
    if create then
      redis.call('ZADD', keys[3], 'NX', '-' .. now, id)
      if keys[4] then redis.call('SADD', keys[4], id) end
    end
    if terminal then
      redis.call('ZADD', keys[3], expire_at, id)
      if keys[4] then redis.call('SREM', keys[4], id) end
    end
  end
  if fp == 112 then -- 'p'; the id is the record key's tag: saga:{ID}
    redis.call('PUBLISH', 'saga:{idx}:settled', string.sub(rec, 7, -2))
  end
  return cancel
end

-- On Redis Cluster (split_index) the store updates saga:{idx}:sagas and
-- the owner's set with plain idempotent commands pipelined around each
-- create and finish: before a create (never a record nobody can find),
-- after a finish (never an unfinished saga that looks finished).

-- saga_gc: removes up to ARGV[1] finished sagas whose retention has run
-- out (index score <= now) from the index. With ARGV[2] = 'd' (a single
-- Redis) it deletes their record and history too, named from the id as
-- ARGV[3] .. id .. ARGV[4] and ARGV[3] .. id .. ARGV[5]; without it (Redis
-- Cluster, where those keys live in other slots) they expired on their own.
-- Only finished sagas have a score >= 0 and a finished saga never changes
-- again, so what is read here is safe to delete in the same call. Returns
-- how many it removed: as many as asked means more may be due.
--   KEYS: saga:{idx}:sagas
local function saga_gc(keys, args)
  local limit = tonumber(args[1])
  local delete = args[2] == 'd'
  if not limit or limit < 1 or (delete and not (args[3] and args[4] and args[5])) then
    return err('BADARGS', 'saga_gc: malformed arguments')
  end
  local ids = redis.call('ZRANGEBYSCORE', keys[1], 0, now_ms(), 'LIMIT', 0, limit)
  if #ids == 0 then
    return 0
  end
  if delete then
    local prefix, rec_end, hist_end = args[3], args[4], args[5]
    local doomed = {}
    for i = 1, #ids do
      doomed[2 * i - 1] = prefix .. ids[i] .. rec_end
      doomed[2 * i] = prefix .. ids[i] .. hist_end
    end
    redis.call('DEL', unpack(doomed))
  end
  redis.call('ZREM', keys[1], unpack(ids))
  return #ids
end

-- saga_migrate: moves the entries of the three indexes written before
-- layout 2 (saga:{idx}:active, :all, :expiry: unfinished ids by created,
-- every id by created, finished ids by expiry) into saga:{idx}:sagas, up
-- to ARGV[1] ids per call, so that no call blocks the server for long.
--   KEYS: saga:{idx}:sagas, saga:{idx}:active, saga:{idx}:all, saga:{idx}:expiry
-- Returns how many ids it moved; 0 once nothing is left (the old keys are
-- gone). Unfinished ones first: a finished id found in both wins.
local function saga_migrate(keys, args)
  local limit = tonumber(args[1])
  if not limit or limit < 1 then
    return err('BADARGS', 'saga_migrate: malformed arguments')
  end
  for i = 2, 4, 2 do -- active, then expiry
    local r = redis.call('ZRANGE', keys[i], 0, limit - 1, 'WITHSCORES')
    if #r > 0 then
      local add, ids = {}, {}
      for j = 1, #r, 2 do
        add[#add + 1] = (i == 2) and -tonumber(r[j + 1]) or r[j + 1]
        add[#add + 1] = r[j]
        ids[#ids + 1] = r[j]
      end
      if i == 2 then
        redis.call('ZADD', keys[1], 'NX', unpack(add))
      else
        redis.call('ZADD', keys[1], unpack(add))
      end
      redis.call('ZREM', keys[i], unpack(ids))
      return #ids
    end
  end
  redis.call('DEL', keys[3])
  return 0
end

-- ------------------------------------------------------------------------
-- Workers: leases, ownership, claims.
--
-- A worker holds a lease in saga:{idx}:workers (score = when it expires,
-- server ms), renewed by heartbeats. The sagas it owns are listed in
-- saga:{idx}:owned:NAME, and each record says owner + fence. Taking a saga
-- over bumps its fence, after which the old owner's writes are refused.
-- ------------------------------------------------------------------------

-- saga_heartbeat: renews the lease of worker ARGV[1] for ARGV[2] ms.
--   KEYS: saga:{idx}:workers, saga:{idx}:serving
-- Returns {now, 1 when the previous lease had already expired (others may
-- have taken our sagas over) else 0, 1 when nothing records the worker as
-- serving a saga (another worker forgot it while its lease had lapsed,
-- which deletes what it serves: saga_deregister; or it published nothing
-- yet) else 0}. Called with the first key alone (a build from before
-- saga:{idx}:serving), it answers the first two values only.
local function saga_heartbeat(keys, args)
  local name, lease = args[1], tonumber(args[2])
  if not (name and lease) then
    return err('BADARGS', 'saga_heartbeat: malformed arguments')
  end
  local now = now_ms()
  local prev = tonumber(redis.call('ZSCORE', keys[1], name))
  local listed = keys[2] and redis.call('HEXISTS', keys[2], name)
  redis.call('ZADD', keys[1], now + lease, name)
  local expired = (prev and prev < now) and 1 or 0
  if not listed then
    return {now, expired}
  end
  return {now, expired, 1 - listed}
end

-- saga_dead_workers: the workers whose lease expired (server time).
--   KEYS: saga:{idx}:workers
local function saga_dead_workers(keys, args)
  return redis.call('ZRANGEBYSCORE', keys[1], '-inf', '(' .. now_ms())
end

-- ------------------------------------------------------------------------
-- Which workers serve which saga names.
--
-- saga:{idx}:defs maps a saga name to the hash of its current definition
-- (what a submit of that name starts); saga:{idx}:serving maps a worker to
-- the names it serves, one per line. A worker's entry is written with each
-- name it publishes and deleted with its lease (saga_deregister: a worker
-- that stops, or a dead one that another worker forgets). Only a worker
-- whose lease runs is said to serve: a dead one not yet forgotten is not.
-- ------------------------------------------------------------------------

-- saga_publish: saga name ARGV[1] is now served under definition ARGV[2],
-- by worker ARGV[3] among others.
--   KEYS: saga:{idx}:defs, saga:{idx}:serving
local function saga_publish(keys, args)
  local name, hash, worker = args[1], args[2], args[3]
  if not (name and hash and worker) or name == '' or worker == '' or
     string.find(name, '\n', 1, true) then
    return err('BADARGS', 'saga_publish: malformed arguments')
  end
  local cur = redis.call('HGET', keys[2], worker) -- a key of another type fails here
  redis.call('HSET', keys[1], name, hash)
  if not cur then
    redis.call('HSET', keys[2], worker, name)
    return 1
  end
  for n in string.gmatch(cur, '[^\n]+') do
    if n == name then
      return 1
    end
  end
  redis.call('HSET', keys[2], worker, cur .. '\n' .. name)
  return 1
end

-- saga_deregister: removes worker ARGV[1]'s lease and what it serves.
--   KEYS: saga:{idx}:workers, saga:{idx}:serving
-- Returns 1 when it held a lease, else 0.
local function saga_deregister(keys, args)
  local worker = args[1]
  if not worker or worker == '' then
    return err('BADARGS', 'saga_deregister: malformed arguments')
  end
  redis.call('HDEL', keys[2], worker)
  return redis.call('ZREM', keys[1], worker)
end

-- saga_serving: the served names, each with its definition's hash and the
-- workers (sorted) whose lease runs (server time) that serve it; with
-- ARGV[1], that name only (an empty array when it is not served).
--   KEYS: saga:{idx}:defs, saga:{idx}:workers, saga:{idx}:serving
-- Returns {name, hash, {worker...}} flattened: 3 entries per name, names
-- sorted.
local function saga_serving(keys, args)
  local only = args[1]
  local defs = {}
  if only then
    local h = redis.call('HGET', keys[1], only)
    if not h then
      return {}
    end
    defs[only] = h
  else
    local all = redis.call('HGETALL', keys[1])
    for i = 1, #all, 2 do
      defs[all[i]] = all[i + 1]
    end
  end
  local by, now = {}, now_ms()
  local serving = redis.call('HGETALL', keys[3])
  for i = 1, #serving, 2 do
    local w = serving[i]
    local expiry = tonumber(redis.call('ZSCORE', keys[2], w))
    if expiry and expiry >= now then
      for n in string.gmatch(serving[i + 1], '[^\n]+') do
        if defs[n] then
          by[n] = by[n] or {}
          table.insert(by[n], w)
        end
      end
    end
  end
  local names = {}
  for n in pairs(defs) do
    table.insert(names, n)
  end
  table.sort(names)
  local out = {}
  for _, n in ipairs(names) do
    local ws = by[n] or {}
    table.sort(ws)
    out[#out + 1] = n
    out[#out + 1] = defs[n]
    out[#out + 1] = ws
  end
  return out
end

-- saga_claim: takes a saga over from an owner known to be gone.
--   KEYS: saga:{ID}, saga:{ID}:history
--   ARGV: expected_owner ('' for an unowned saga) new_owner
-- Refuses when the record's owner is not the expected one (someone else
-- claimed it first), or the saga is finished. Returns the new fence.
local function saga_claim(keys, args)
  local expected, me = args[1], args[2]
  if not (expected and me and me ~= '') then
    return err('BADARGS', 'saga_claim: malformed arguments')
  end
  local cur = redis.call('HMGET', keys[1], 'owner', 'fence', 'state', 'seq')
  if not cur[4] then
    return err('NOTFOUND', 'no such saga')
  end
  if cur[3] == 'completed' or cur[3] == 'compensated' then
    return err('FINISHED', 'the saga is ' .. cur[3])
  end
  if not cur[2] then
    return err('UNMANAGED', 'the saga is not run by workers (saga run / resume)')
  end
  local owner = cur[1] or ''
  if owner ~= expected then
    return err('OWNED', 'owned by ' .. (owner == '' and '(nobody)' or owner))
  end
  local fence = (tonumber(cur[2]) or 0) + 1
  local now = now_ms()
  redis.call('HSET', keys[1], 'owner', me, 'fence', fence, 'updated', now)
  history(keys[2], now, cur[4], me, 'saga.claimed',
          'from ' .. (owner == '' and '(nobody)' or owner) .. ', fence ' .. fence)
  return fence
end

-- saga_release: gives a saga up (worker stopping, saga parked stuck).
--   KEYS: saga:{ID}, saga:{ID}:history
--   ARGV: owner fence
-- Only the current owner under the current fence may release.
local function saga_release(keys, args)
  local cur = redis.call('HMGET', keys[1], 'owner', 'fence', 'seq')
  if not cur[3] then
    return 0
  end
  if cur[1] ~= args[1] or cur[2] ~= args[2] then
    return err('FENCED', 'not the owner any more')
  end
  redis.call('HSET', keys[1], 'owner', '')
  return 1
end

-- saga_submit: enqueues a start request once per saga id.
--   KEYS: saga:{idx}:intake, saga:{idx}:submitted
--   ARGV: id name hash input retention_ms
-- Returns 1 when enqueued, 0 when that id was submitted before.
local function saga_submit(keys, args)
  local id, name, hash, input = args[1], args[2], args[3], args[4]
  local retention = tonumber(args[5])
  if not (id and name and hash and input and retention) then
    return err('BADARGS', 'saga_submit: malformed arguments')
  end
  local now = now_ms()
  if redis.call('ZSCORE', keys[2], id) then
    return 0
  end
  -- Old submissions are forgotten after the retention, like their sagas.
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', now - retention)
  redis.call('ZADD', keys[2], now, id)
  redis.call('XADD', keys[1], '*', 'id', id, 'name', name, 'hash', hash,
             'input', input, 'ts', now)
  return 1
end

-- saga_intake_done: start requests were handled (their sagas created, or
-- the requests refused): acknowledged, and the stream trimmed, in one call.
-- A worker batches the requests it finished in one turn of its loop: one
-- call for all of them.
--   KEYS: saga:{idx}:intake   ARGV: group entry-id [entry-id...]
-- Returns how many of the entries were pending (acknowledged now).
-- The stream keeps only what may still be needed: it is trimmed (XTRIM
-- MINID) up to the oldest entry still pending, any consumer's, or, when
-- none is, up to the last one delivered. Everything before that point was
-- delivered and acknowledged: never a request not yet read, nor one a
-- worker holds. Deleting each entry (XDEL, what engines before 2026-12-06
-- did) cost Redis about 19,000 instructions per entry (it searches the
-- entry's node from its start each time); trimming costs about 1,500 per
-- entry (bench/RESULTS.md). An entry handled while an older one is still
-- pending stays in the stream until that one is handled too: XLEN counts
-- it, saga_intake_backlog does not.
-- The fields of consumer group `group` of stream `key` (XINFO GROUPS:
-- pending, last-delivered-id, lag, ...), or nil when it has no such group.
local function intake_group(key, group)
  local groups = redis.call('XINFO', 'GROUPS', key)
  for i = 1, #groups do
    local g = groups[i]
    if g[2] == group then
      local f = {}
      for j = 1, #g - 1, 2 do
        f[g[j]] = g[j + 1]
      end
      return f
    end
  end
  return nil
end

local function intake_trim_point(key, group)
  local oldest = redis.call('XPENDING', key, group)[2]
  if oldest then
    return oldest
  end
  local f = intake_group(key, group)
  local ms, sq = string.match(f and f['last-delivered-id'] or '', '^(%d+)-(%d+)$')
  if ms then
    return ms .. '-' .. (tonumber(sq) + 1) -- just past it
  end
  return nil
end

local function saga_intake_done(keys, args)
  local group, n = args[1], #args
  if not (group and args[2]) or n > 1001 then
    return err('BADARGS', 'saga_intake_done: malformed arguments')
  end
  local acked = redis.call('XACK', keys[1], group, unpack(args, 2, n))
  local point = intake_trim_point(keys[1], group)
  if point then
    redis.call('XTRIM', keys[1], 'MINID', point)
  end
  return acked
end

-- saga_intake_backlog: how many start requests were submitted and not yet
-- handled: those delivered and not acknowledged (pending) plus those not
-- delivered yet (the group's lag). Where Redis cannot tell the lag (entries
-- deleted inside the stream: XDEL by engines before 2026-12-06), the
-- stream's length, as those engines counted (then it may also count
-- requests handled while an older one was pending).
--   KEYS: saga:{idx}:intake   ARGV: group
local function saga_intake_backlog(keys, args)
  local group = args[1]
  if not group then
    return err('BADARGS', 'saga_intake_backlog: malformed arguments')
  end
  if redis.call('EXISTS', keys[1]) == 0 then
    return 0
  end
  local f = intake_group(keys[1], group)
  if not (f and f['lag']) then
    return redis.call('XLEN', keys[1]) -- no group yet (nothing was read), or no lag
  end
  return (f['pending'] or 0) + f['lag']
end

-- saga_cancel / saga_retry: operator commands on one saga.
--   KEYS: saga:{ID}, saga:{ID}:history
--   ARGV: who
-- Both return {owner ('' when none), 1 when workers manage the saga (it
-- has a fence) else 0}, so the caller knows whom to wake.
local function saga_cancel(keys, args)
  local cur = redis.call('HMGET', keys[1], 'state', 'stuck_in', 'owner', 'seq', 'cancel',
                         'pivoted')
  if not cur[4] then
    return err('NOTFOUND', 'no such saga')
  end
  local st = cur[1]
  if st == 'completed' or st == 'compensated' then
    return err('STATE', 'the saga is ' .. st .. ': nothing to cancel')
  end
  if st == 'compensating' or (st == 'stuck' and cur[2] == 'compensating') then
    return err('STATE', 'the saga is compensating already')
  end
  -- Checked here, in the call that writes the request: the engine writes
  -- 'confirming' and 'pivoted' before acting on them, so no cancel can slip
  -- in between a check and the decision.
  if st == 'confirming' or (st == 'stuck' and cur[2] == 'confirming') then
    return err('STATE', 'the saga is confirming: every Try succeeded and the decision ' ..
               'to confirm is written; a TCC saga cannot be cancelled any more')
  end
  if cur[6] == '1' then
    return err('STATE', 'the saga passed its pivot step: it can only go forward, ' ..
               'not be cancelled')
  end
  local managed = redis.call('HEXISTS', keys[1], 'fence')
  if cur[5] == '1' then
    return {cur[3] or '', managed}
  end
  local now = now_ms()
  redis.call('HSET', keys[1], 'cancel', '1', 'updated', now)
  history(keys[2], now, cur[4], '', 'saga.cancel_requested', 'by ' .. (args[1] or 'operator'))
  return {cur[3] or '', managed}
end

-- Parses "<status> <attempts> <base> <retry_at>".
local function phase_parse(v)
  if not v then return nil end
  local st, a, b, at = string.match(v, '^(%a+) (%d+) (%d+) (%d+)$')
  return st, a, b, at
end

local function saga_retry(keys, args)
  local rec = keys[1]
  local cur = redis.call('HMGET', rec, 'state', 'stuck_in', 'owner', 'seq')
  if not cur[4] then
    return err('NOTFOUND', 'no such saga')
  end
  if cur[1] ~= 'stuck' then
    return err('STATE', 'the saga is ' .. tostring(cur[1]) .. ', not stuck')
  end
  if cur[3] and cur[3] ~= '' then
    return err('STATE', 'the saga is still being parked by ' .. cur[3] ..
               ' (calls in flight); try again in a moment')
  end
  -- The phase it was stuck in: its failed compensations (a TCC saga's
  -- Cancels), Confirms, or actions (Trys are never stuck: they cancel).
  local prefix = (cur[2] == 'compensating') and 'comp:' or
                 (cur[2] == 'confirming') and 'conf:' or 'act:'
  local all = redis.call('HGETALL', rec)
  local now = now_ms()
  local reset = {}
  for i = 1, #all, 2 do
    local k = all[i]
    if string.sub(k, 1, #prefix) == prefix then
      local st, a = phase_parse(all[i + 1])
      if st == 'failed' then
        -- The attempt budget restarts: base = attempts; due at once.
        reset[#reset + 1] = k
        reset[#reset + 1] = 'waiting ' .. a .. ' ' .. a .. ' ' .. now
      end
    end
  end
  if #reset == 0 then
    return err('STATE', 'no failed step to retry')
  end
  redis.call('HSET', rec, 'state', cur[2] or 'running', 'reason', '', 'updated', now,
             unpack(reset))
  history(keys[2], now, cur[4], '', 'saga.retried', 'by ' .. (args[1] or 'operator'))
  return {cur[3] or '', redis.call('HEXISTS', rec, 'fence')}
end

-- saga_state: where one saga stands, for `saga wait` (and anyone polling).
--   KEYS: saga:{ID}
-- Returns {state, reason}, each false when absent: no state means no record
-- (yet). Whether a saga without a record was submitted is a separate read
-- of saga:{idx}:submitted by the caller: a function touches the keys of one
-- hash tag only (Redis Cluster).
local function saga_state(keys, args)
  local cur = redis.call('HMGET', keys[1], 'state', 'reason')
  return {cur[1], cur[2]}
end

-- saga_list_page: one page of the index, for `saga list` / GET /v1/sagas.
--   KEYS: saga:{idx}:sagas
--   ARGV: part ('u': unfinished, scores below 0, ascending; 'f': finished,
--         scores from 0, descending), score, member (both '' to start at
--         the beginning of the part), count
-- Returns {member, score, ...}: at most count entries of the part that come
-- strictly after (score, member) in the part's order (Redis orders equal
-- scores by member, bytewise; reversed when descending). A keyset cursor:
-- entries added or removed elsewhere shift nothing, and the entry itself
-- need not be there any more. O(log N) per call whatever the runs of equal
-- scores: the place in the run is found by a binary search over ranks.
local function bytes_lt(a, b)
  -- a < b bytewise (Lua's own < follows the server's locale)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function saga_list_page(keys, args)
  local key, asc, s, m = keys[1], args[1] == 'u', args[2], args[3]
  local count = tonumber(args[4])
  if (args[1] ~= 'u' and args[1] ~= 'f') or not count or count < 1 then
    return err('EINVAL', 'saga_list_page: bad arguments')
  end
  local start = 0 -- rank of the first entry, counted in the part's direction
  if s ~= '' then
    if not tonumber(s) then return err('EINVAL', 'saga_list_page: bad score') end
    local first = redis.call('ZCOUNT', key, '-inf', '(' .. s)
    local run = redis.call('ZCOUNT', key, s, s)
    -- lo = how many of the run (ascending ranks first .. first+run-1) have
    -- a member <= m (ascending) or < m (descending)
    local lo, hi = 0, run
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local e = redis.call('ZRANGE', key, first + mid, first + mid)[1]
      local before
      if asc then before = not bytes_lt(m, e) else before = bytes_lt(e, m) end
      if before then lo = mid + 1 else hi = mid end
    end
    if asc then
      start = first + lo
    else
      start = redis.call('ZCARD', key) - first - lo
    end
  end
  local got
  if asc then
    got = redis.call('ZRANGE', key, start, start + count - 1, 'WITHSCORES')
  else
    got = redis.call('ZRANGE', key, start, start + count - 1, 'REV', 'WITHSCORES')
  end
  local out = {}
  for i = 1, #got, 2 do
    local v = tonumber(got[i + 1])
    if (asc and v >= 0) or (not asc and v < 0) then break end
    out[#out + 1] = got[i]
    out[#out + 1] = got[i + 1]
  end
  return out
end

-- saga_library: which build of this library the server runs (the SHA-256
-- of saga.lua, filled in when the engine is built). An engine compares it
-- with its own on every connection and loads its library only when they
-- differ, instead of writing 15 KB of code into the AOF each time.
local function saga_library(keys, args)
  return '@EMBED_SHA256@'
end

redis.register_function{function_name = 'saga_library', callback = saga_library,
                        flags = {'no-writes'}}
redis.register_function('saga_write', saga_write)
redis.register_function('saga_gc', saga_gc)
redis.register_function('saga_migrate', saga_migrate)
redis.register_function('saga_heartbeat', saga_heartbeat)
redis.register_function('saga_dead_workers', saga_dead_workers)
redis.register_function('saga_claim', saga_claim)
redis.register_function('saga_publish', saga_publish)
redis.register_function('saga_deregister', saga_deregister)
redis.register_function{function_name = 'saga_serving', callback = saga_serving,
                        flags = {'no-writes'}}
redis.register_function('saga_release', saga_release)
redis.register_function('saga_submit', saga_submit)
redis.register_function('saga_intake_done', saga_intake_done)
redis.register_function{function_name = 'saga_intake_backlog', callback = saga_intake_backlog,
                        flags = {'no-writes'}}
redis.register_function('saga_cancel', saga_cancel)
redis.register_function('saga_retry', saga_retry)
redis.register_function{function_name = 'saga_state', callback = saga_state,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'saga_list_page', callback = saga_list_page,
                        flags = {'no-writes'}}
