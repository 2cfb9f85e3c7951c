#!lua name=saga
--
-- saga.lua -- the server side of saga's Redis store: one Redis 7 Function
-- library, loaded with FUNCTION LOAD REPLACE on every connection (functions
-- persist with the data, so a restarted server has them too).
--
-- Every key of one saga shares the hash tag of its id:
--   saga:{ID}            hash    the saga's record
--   saga:{ID}:history    stream  its transitions, in order
-- Global indexes share the hash tag {idx}, so that a function may touch
-- several of them on Redis Cluster:
--   saga:{idx}:active    zset    unfinished sagas, score = created (ms)
--   saga:{idx}:all       zset    every saga still retained, score = created
--   saga:{idx}:expiry    zset    finished sagas, score = when they expire
--
-- Rule for every function: validate everything, then write. A script that
-- fails half-way keeps its earlier writes.

local CREATE = 1
local TERMINAL = 2

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function err(code, msg)
  return redis.error_reply('SAGA' .. code .. ' ' .. msg)
end

-- saga_write: one transition of one saga, atomically.
--   KEYS: saga:{ID}, saga:{ID}:history
--   ARGV: seq fence flags worker retention_ms wtok nfields
--         (field value)*nfields nevents (type step phase attempt detail)*nevents
-- `seq` is the record's transition counter after this write; the record
-- must stand at seq-1 (or not exist, for a create). `wtok` identifies this
-- write: a write resent after a lost connection finds its own token and
-- seq in the record and is acknowledged without being applied twice.
-- `fence`, when the record has one, must match: a worker whose lease was
-- taken over can no longer write.
-- Returns 1 when an operator asked to cancel the saga, else 0.
local function saga_write(keys, args)
  local rec, hist = keys[1], keys[2]
  local seq = tonumber(args[1])
  local fence = args[2]
  local flags = tonumber(args[3])
  local worker = args[4]
  local retention = tonumber(args[5])
  local wtok = args[6]
  local nfields = tonumber(args[7])
  if not (seq and flags and retention and nfields and wtok) then
    return err('BADARGS', 'saga_write: malformed arguments')
  end
  local nevents = tonumber(args[8 + 2 * nfields])
  if not nevents or #args ~= 8 + 2 * nfields + 5 * nevents then
    return err('BADARGS', 'saga_write: wrong number of arguments')
  end

  local cur = redis.call('HMGET', rec, 'seq', 'fence', 'cancel', 'wtok')
  local curseq = tonumber(cur[1])
  local cancel = (cur[3] == '1') and 1 or 0
  if cur[1] and curseq == seq and cur[4] == wtok then
    return cancel -- this very write was applied already
  end
  if bit.band(flags, CREATE) ~= 0 then
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
    if curseq ~= seq - 1 then
      return err('CONFLICT', 'record at seq ' .. tostring(curseq) ..
                 ', write expects ' .. tostring(seq - 1))
    end
  end

  local now = now_ms()
  redis.call('HSET', rec, 'seq', args[1], 'wtok', wtok, 'updated', now)
  -- In chunks: unpack() is limited to a few thousand values.
  local i = 0
  while i < nfields do
    local chunk = {}
    local last = math.min(nfields, i + 500) - 1
    for j = i, last do
      chunk[#chunk + 1] = args[8 + 2 * j]
      chunk[#chunk + 1] = args[9 + 2 * j]
    end
    redis.call('HSET', rec, unpack(chunk))
    i = last + 1
  end
  local base = 9 + 2 * nfields
  for i = 0, nevents - 1 do
    local a = base + 5 * i
    redis.call('XADD', hist, 'MAXLEN', '~', 100000, '*',
               'ts', now, 'seq', args[1], 'type', args[a], 'step', args[a + 1],
               'phase', args[a + 2], 'attempt', args[a + 3],
               'detail', args[a + 4], 'worker', worker)
  end
  if bit.band(flags, TERMINAL) ~= 0 then
    redis.call('PEXPIRE', rec, retention)
    redis.call('PEXPIRE', hist, retention)
  end
  return cancel
end

-- saga_index: keeps the global indexes in step with one saga's life.
--   KEYS: saga:{idx}:active, saga:{idx}:all, saga:{idx}:expiry
--   ARGV: op id score
--   op 'created':  the saga enters active and all (score = created ms);
--                  called BEFORE its record is created, so a crash in
--                  between leaves an index entry without a record, which
--                  readers skip and clean (never a record nobody finds).
--   op 'finished': it leaves active; it expires from all at score (ms).
--   op 'forget':   it leaves every index (its record is gone).
local function saga_index(keys, args)
  local op, id, score = args[1], args[2], tonumber(args[3])
  if not (id and score) then
    return err('BADARGS', 'saga_index: malformed arguments')
  end
  if op == 'created' then
    redis.call('ZADD', keys[1], 'NX', score, id)
    redis.call('ZADD', keys[2], 'NX', score, id)
  elseif op == 'finished' then
    redis.call('ZREM', keys[1], id)
    redis.call('ZADD', keys[3], score, id)
  elseif op == 'forget' then
    redis.call('ZREM', keys[1], id)
    redis.call('ZREM', keys[2], id)
    redis.call('ZREM', keys[3], id)
  else
    return err('BADARGS', 'saga_index: unknown op ' .. tostring(op))
  end
  return 0
end

-- saga_gc: drops up to ARGV[1] expired sagas from the indexes (their
-- records expired on their own). Keeps index growth bounded by retention.
--   KEYS: saga:{idx}:all, saga:{idx}:expiry
local function saga_gc(keys, args)
  local limit = tonumber(args[1]) or 100
  local ids = redis.call('ZRANGEBYSCORE', keys[2], '-inf', now_ms(),
                         'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', keys[1], id)
    redis.call('ZREM', keys[2], id)
  end
  return #ids
end

redis.register_function('saga_write', saga_write)
redis.register_function('saga_index', saga_index)
redis.register_function('saga_gc', saga_gc)
