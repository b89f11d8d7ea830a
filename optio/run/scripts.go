package run

import "github.com/redis/go-redis/v9"

// emit publishes the run's hash as a JSON object on the event channel and
// returns the hash. Every script that changes a run ends with it, so the
// event and the change are one atomic step.
const emit = `
local function emit(channel, key)
  local h = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #h, 2 do t[h[i]] = h[i + 1] end
  redis.call('PUBLISH', channel, cjson.encode(t))
  return h
end
local function expireAll(keys, seconds)
  for _, k in ipairs(keys) do redis.call('EXPIRE', k, seconds) end
end
`

// createScript makes a new running run unless one is running, and clears
// the mark of a run Redis lost.
// KEYS: current, run:<new>, events, lost. ARGV: prefix, id, x, y, now ms.
var createScript = redis.NewScript(emit + `
local cur = redis.call('GET', KEYS[1])
if cur then
  local curKey = ARGV[1] .. 'run:' .. cur
  if redis.call('HGET', curKey, 'state') == 'running' then
    return {'running', redis.call('HGETALL', curKey)}
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'state', 'running', 'x', ARGV[3], 'y', ARGV[4],
  'enqueued', 0, 'processed', 0, 'failed', 0, 'cancelled', 0,
  'startedAt', ARGV[5], 'updatedAt', ARGV[5], 'next', 0, 'last', 0)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[4])
return {'created', emit(KEYS[3], KEYS[2])}
`)

// stopScript stops the current run if it is running.
// KEYS: current, events, lost. ARGV: prefix, now ms, retention seconds.
var stopScript = redis.NewScript(emit + `
local cur = redis.call('GET', KEYS[1])
if not cur then
  local lost = redis.call('GET', KEYS[3])
  if lost then return {'lost', lost} end
  return {'none'}
end
local key = ARGV[1] .. 'run:' .. cur
if redis.call('EXISTS', key) == 0 then return {'lost', cur} end
if redis.call('HGET', key, 'state') ~= 'running' then
  return {'unchanged', redis.call('HGETALL', key)}
end
redis.call('HSET', key, 'state', 'stopped', 'finishedAt', ARGV[2], 'updatedAt', ARGV[2])
expireAll({key, key .. ':done', key .. ':failed', key .. ':releases'}, tonumber(ARGV[3]))
return {'stopped', emit(KEYS[2], key)}
`)

// lostMark records that a job or a tick named a run Redis does not know
// while no run is current: Redis lost its data (a restart without
// persistence), and status says so instead of showing a fresh idle state.
const lostMark = `
local function markLost(current, lost, id, seconds)
  if redis.call('EXISTS', current) == 0 then
    redis.call('SET', lost, id, 'EX', seconds)
  end
end
`

// beginScript tells process whether a job should run. For a job requeued
// from the dead-letter queue (retry 1) of a running or completed run that
// was counted as failed, it takes the failure back first (clears its bits,
// decrements failed), so the job is worked on and counted again.
// KEYS: run, done, failed, current, lost, events. ARGV: job, retry 0/1,
// retention seconds, now ms, run id. Returns {state, bit}; state "" for an
// unknown run, "nojob" for a job index the run does not have (0..x-1).
var beginScript = redis.NewScript(emit + lostMark + `
local h = redis.call('HMGET', KEYS[1], 'state', 'x')
local st = h[1]
if not st then
  markLost(KEYS[4], KEYS[5], ARGV[5], tonumber(ARGV[3]))
  return {'', 0}
end
if tonumber(ARGV[1]) >= tonumber(h[2]) then return {'nojob', 0} end
if ARGV[2] == '1' and st ~= 'stopped' and redis.call('GETBIT', KEYS[3], ARGV[1]) == 1 then
  redis.call('SETBIT', KEYS[3], ARGV[1], 0)
  redis.call('SETBIT', KEYS[2], ARGV[1], 0)
  redis.call('HINCRBY', KEYS[1], 'failed', -1)
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[4])
  emit(KEYS[6], KEYS[1])
  return {st, 0}
end
return {st, redis.call('GETBIT', KEYS[2], ARGV[1])}
`)

// accountScript counts a job exactly once: it sets the job's bit and
// increments the outcome's counter only if the bit was clear, then completes
// the run when processed + failed reaches x. A failed job also gets its bit
// in the failed bitmap, so that a retry from the dead-letter queue can take
// the failure back.
// KEYS: run, done, events, releases, failed, current, lost.
// ARGV: job, field, now ms, retention seconds, run id.
// Returns 1 when counted, 0 when the job was already accounted for, -1 for
// an unknown run, -2 for a job index the run does not have (0..x-1): a
// forged or corrupt message must neither count nor grow the bitmap.
var accountScript = redis.NewScript(emit + lostMark + `
local h = redis.call('HMGET', KEYS[1], 'state', 'x')
local st, x = h[1], tonumber(h[2])
if not st then
  markLost(KEYS[6], KEYS[7], ARGV[5], tonumber(ARGV[4]))
  return -1
end
if tonumber(ARGV[1]) >= x then return -2 end
if redis.call('SETBIT', KEYS[2], ARGV[1], 1) == 1 then return 0 end
if st ~= 'running' then
  -- The run has ended: a bitmap first written now must expire too.
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
if ARGV[2] == 'failed' then
  redis.call('SETBIT', KEYS[5], ARGV[1], 1)
  if st ~= 'running' then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[4])) end
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[3])
if st == 'running' then
  local v = redis.call('HMGET', KEYS[1], 'processed', 'failed')
  if tonumber(v[1]) + tonumber(v[2]) >= x then
    redis.call('HSET', KEYS[1], 'state', 'completed', 'finishedAt', ARGV[3])
    expireAll({KEYS[1], KEYS[2], KEYS[4], KEYS[5]}, tonumber(ARGV[4]))
  end
end
emit(KEYS[3], KEYS[1])
return 1
`)

// acquireScript takes the release lease of a running run.
// KEYS: run, lease, successor. ARGV: token, ttl ms, waiting (1 marks the
// caller as a successor waiting for the lease).
// Returns {'acquired', next, last, x, y}, {'busy'} or {state}.
var acquireScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'unknown'} end
if st ~= 'running' then return {st} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
  local v = redis.call('HMGET', KEYS[1], 'next', 'last', 'x', 'y')
  return {'acquired', v[1], v[2], v[3], v[4]}
end
if ARGV[3] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2]) end
return {'busy'}
`)

// commitScript records released jobs under the lease and renews it.
// KEYS: run, lease, successor, releases, events.
// ARGV: token, ttl ms, next, last µs, released count, now ms, then pairs of
// (unix second, count) for the release histogram.
// Returns {'lost'} when the lease is no longer ours, else {state, successor waiting 0/1}.
var commitScript = redis.NewScript(emit + `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost'} end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'next', ARGV[3], 'last', ARGV[4])
local n = tonumber(ARGV[5])
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'enqueued', n)
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[6])
  for i = 7, #ARGV, 2 do redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1]) end
  emit(KEYS[5], KEYS[1])
end
local waiting = 0
if redis.call('EXISTS', KEYS[3]) == 1 then waiting = 1 end
return {redis.call('HGET', KEYS[1], 'state'), waiting}
`)

// markLostScript marks run id as lost when Redis does not know it and no
// run is current. KEYS: run, current, lost. ARGV: id, seconds.
var markLostScript = redis.NewScript(lostMark + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
markLost(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
return 1
`)

// releaseScript gives the lease up if it is still ours. KEYS: lease. ARGV: token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
