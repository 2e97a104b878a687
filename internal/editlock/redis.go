package editlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Locker shared by gateway replicas.
//
// Key layout (T = tenant; {T} is a hash tag, so all of a tenant's keys live
// in one cluster slot and the scripts may touch keys they compute):
//
//	pbs:lock:user:{T}:<userID>     → session id    (PX ttl)
//	pbs:lock:pb:{T}:<playbook>     → session id    (PX ttl)
//	pbs:lock:sess:{T}:<sessionID>  → holder JSON   (PX ttl)
//	pbs:lock:fence:{T}:<playbook>  → fence counter (PX max(ttl, 7 days))
//	pbs:lock:live:{T}              → sorted set of session ids, score =
//	                                 AcquiredAt in ms (for List; members whose
//	                                 sess key expired are removed by List)
//
// The three lock keys of a session are written, extended and deleted
// together, each by one Lua script: Acquire and Release are one round trip.
type Redis struct {
	client *redis.Client
	now    func() time.Time
}

var _ Locker = (*Redis)(nil)

// NewRedis returns a Locker on client. The client's dial, read and write
// timeouts bound how long a call waits for a Redis that is gone (the kv
// package's client uses 2 s). now stamps AcquiredAt and seeds fence
// counters; nil means time.Now. Lease expiry runs on Redis's clock.
func NewRedis(client *redis.Client, now func() time.Time) (*Redis, error) {
	if client == nil {
		return nil, errors.New("editlock: nil redis client")
	}
	if now == nil {
		now = time.Now
	}
	return &Redis{client: client, now: now}, nil
}

const keyPrefix = "pbs:lock:"

// tenantKeys builds the key names of one tenant.
type tenantKeys struct{ user, pb, sess, fence, live string }

func keysOf(tenant string) tenantKeys {
	tag := "{" + tenant + "}:"
	return tenantKeys{
		user:  keyPrefix + "user:" + tag,
		pb:    keyPrefix + "pb:" + tag,
		sess:  keyPrefix + "sess:" + tag,
		fence: keyPrefix + "fence:" + tag,
		live:  keyPrefix + "live:" + tag[:len(tag)-1],
	}
}

// luaCommon is prepended to the scripts that release sessions.
const luaCommon = `
local function drop(sid, h, userP, pbP, sessP, live)
  redis.call('DEL', sessP .. sid)
  redis.call('ZREM', live, sid)
  if h then
    local uk = userP .. h.userId
    if redis.call('GET', uk) == sid then redis.call('DEL', uk) end
    local pk = pbP .. h.playbook
    if redis.call('GET', pk) == sid then redis.call('DEL', pk) end
  end
end
local function bumpLive(live, ttl)
  if redis.call('PTTL', live) < tonumber(ttl) then redis.call('PEXPIRE', live, ttl) end
end
`

// acquireScript: KEYS user, pb, sess, fence, live. ARGV sid, tenant,
// userId, userName, playbook, acquiredAt, acquiredAt ms, ttl ms, takeover
// ("1"), fence keep ms, user prefix, pb prefix, sess prefix.
// Returns {status, holder JSON, taken-over JSON or ""}; status is ok, pb,
// user or sess.
var acquireScript = redis.NewScript(luaCommon + `
local sid, uid, pbid = ARGV[1], ARGV[3], ARGV[5]
local ttl, takeover = ARGV[8], ARGV[9] == '1'
local userP, pbP, sessP, live = ARGV[11], ARGV[12], ARGV[13], KEYS[5]

local mine = redis.call('GET', KEYS[3])
if mine then
  local m = cjson.decode(mine)
  if m.userId ~= uid or m.playbook ~= pbid then return {'sess', mine, ''} end
  if redis.call('GET', KEYS[1]) == sid and redis.call('GET', KEYS[2]) == sid then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
    redis.call('PEXPIRE', KEYS[4], ARGV[10])
    redis.call('ZADD', live, 'NX', ARGV[7], sid)
    bumpLive(live, ttl)
    return {'ok', mine, ''}
  end
  drop(sid, m, userP, pbP, sessP, live)
end

local taken = ''
local psid = redis.call('GET', KEYS[2])
if psid then
  local pj = redis.call('GET', sessP .. psid)
  if not pj then
    redis.call('DEL', KEYS[2])
  else
    local ph = cjson.decode(pj)
    if ph.userId ~= uid or not takeover then return {'pb', pj, ''} end
    drop(psid, ph, userP, pbP, sessP, live)
    taken = pj
  end
end
local usid = redis.call('GET', KEYS[1])
if usid then
  local uj = redis.call('GET', sessP .. usid)
  if not uj then
    redis.call('DEL', KEYS[1])
  else
    if not takeover then return {'user', uj, ''} end
    drop(usid, cjson.decode(uj), userP, pbP, sessP, live)
    taken = uj
  end
end

if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SET', KEYS[4], ARGV[7]) end
local fence = redis.call('INCR', KEYS[4])
redis.call('PEXPIRE', KEYS[4], ARGV[10])
local j = cjson.encode({sessionId = sid, tenant = ARGV[2], userId = uid, userName = ARGV[4],
  playbook = pbid, fence = fence, acquiredAt = ARGV[6]})
redis.call('SET', KEYS[1], sid, 'PX', ttl)
redis.call('SET', KEYS[2], sid, 'PX', ttl)
redis.call('SET', KEYS[3], j, 'PX', ttl)
redis.call('ZADD', live, ARGV[7], sid)
bumpLive(live, ttl)
return {'ok', j, taken}
`)

// renewScript: KEYS user, pb, sess, live, fence. ARGV sid, ttl ms,
// acquiredAt ms, fence keep ms. Returns 1, or 0 when lost.
var renewScript = redis.NewScript(luaCommon + `
local sid, ttl = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[1]) ~= sid or redis.call('GET', KEYS[2]) ~= sid
   or redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('PEXPIRE', KEYS[5], ARGV[4])
redis.call('ZADD', KEYS[4], 'NX', ARGV[3], sid)
bumpLive(KEYS[4], ttl)
return 1
`)

// releaseScript: KEYS user, pb, sess, live. ARGV sid. Returns 1 when the
// session held both locks, 0 otherwise; deletes whatever it still held.
var releaseScript = redis.NewScript(`
local sid, held = ARGV[1], 1
for i = 1, 2 do
  if redis.call('GET', KEYS[i]) == sid then redis.call('DEL', KEYS[i]) else held = 0 end
end
if redis.call('DEL', KEYS[3]) == 0 then held = 0 end
redis.call('ZREM', KEYS[4], sid)
return held
`)

// forceReleaseScript: KEYS sess, live. ARGV sid, user prefix, pb prefix,
// sess prefix. Returns the released holder JSON, or nil.
var forceReleaseScript = redis.NewScript(luaCommon + `
local j = redis.call('GET', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not j then return false end
drop(ARGV[1], cjson.decode(j), ARGV[2], ARGV[3], ARGV[4], KEYS[2])
return j
`)

// checkFenceScript: KEYS pb, sess, fence. ARGV sid, fence. Returns 1 when
// the playbook is held by sid with exactly this fence, the newest issued.
var checkFenceScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local j = redis.call('GET', KEYS[2])
if not j then return 0 end
local f = tonumber(ARGV[2])
if cjson.decode(j).fence ~= f then return 0 end
local c = redis.call('GET', KEYS[3])
if c and tonumber(c) ~= f then return 0 end
return 1
`)

// holderScript: KEYS the user or playbook key. ARGV sess prefix. Returns
// the holder JSON of the session it names, or nil.
var holderScript = redis.NewScript(`
local sid = redis.call('GET', KEYS[1])
if not sid then return false end
return redis.call('GET', ARGV[1] .. sid)
`)

// listScript: KEYS live. ARGV sess prefix. Returns the holder JSON of every
// live session and forgets the expired ones.
var listScript = redis.NewScript(`
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local j = redis.call('GET', ARGV[1] .. sid)
  if j then out[#out + 1] = j else redis.call('ZREM', KEYS[1], sid) end
end
return out
`)

func (r *Redis) Acquire(ctx context.Context, req Request) (Result, error) {
	h := req.Holder
	if err := validHolder(h); err != nil {
		return Result{}, err
	}
	if err := validTTL(req.TTL); err != nil {
		return Result{}, err
	}
	k := keysOf(h.Tenant)
	at := stamp(r.now())
	takeover := "0"
	if req.Takeover {
		takeover = "1"
	}
	v, err := acquireScript.Run(ctx, r.client,
		[]string{k.user + h.UserID, k.pb + h.Playbook, k.sess + h.SessionID, k.fence + h.Playbook, k.live},
		h.SessionID, h.Tenant, h.UserID, h.UserName, h.Playbook,
		at.Format(time.RFC3339Nano), at.UnixMilli(), req.TTL.Milliseconds(), takeover,
		fenceKeepFor(req.TTL).Milliseconds(), k.user, k.pb, k.sess,
	).StringSlice()
	if err != nil {
		return Result{}, redisErr(err)
	}
	if len(v) != 3 {
		return Result{}, fmt.Errorf("editlock: redis: acquire returned %d values", len(v))
	}
	got, err := decodeHolder(v[1])
	if err != nil {
		return Result{}, err
	}
	switch v[0] {
	case "ok":
	case "pb":
		return Result{}, &PlaybookLockedError{Holder: got}
	case "user":
		return Result{}, &UserBusyError{Holder: got}
	case "sess":
		return Result{}, ErrSessionInUse
	default:
		return Result{}, fmt.Errorf("editlock: redis: acquire returned status %q", v[0])
	}
	res := Result{Holder: got}
	if v[2] != "" {
		taken, err := decodeHolder(v[2])
		if err != nil {
			return Result{}, err
		}
		res.TakenOver = &taken
	}
	return res, nil
}

func (r *Redis) Renew(ctx context.Context, h Holder, ttl time.Duration) error {
	if err := validHolder(h); err != nil {
		return err
	}
	if err := validTTL(ttl); err != nil {
		return err
	}
	k := keysOf(h.Tenant)
	ok, err := renewScript.Run(ctx, r.client,
		[]string{k.user + h.UserID, k.pb + h.Playbook, k.sess + h.SessionID, k.live, k.fence + h.Playbook},
		h.SessionID, ttl.Milliseconds(), h.AcquiredAt.UnixMilli(), fenceKeepFor(ttl).Milliseconds(),
	).Int()
	if err != nil {
		return redisErr(err)
	}
	if ok != 1 {
		return ErrLost
	}
	return nil
}

func (r *Redis) Release(ctx context.Context, h Holder) error {
	if err := validHolder(h); err != nil {
		return err
	}
	k := keysOf(h.Tenant)
	held, err := releaseScript.Run(ctx, r.client,
		[]string{k.user + h.UserID, k.pb + h.Playbook, k.sess + h.SessionID, k.live},
		h.SessionID,
	).Int()
	if err != nil {
		return redisErr(err)
	}
	if held != 1 {
		return ErrLost
	}
	return nil
}

func (r *Redis) UserHolder(ctx context.Context, tenant, userID string) (Holder, error) {
	if err := validTenant(tenant); err != nil {
		return Holder{}, err
	}
	k := keysOf(tenant)
	return r.holder(ctx, k.user+userID, k.sess)
}

func (r *Redis) PlaybookHolder(ctx context.Context, tenant, playbook string) (Holder, error) {
	if err := validTenant(tenant); err != nil {
		return Holder{}, err
	}
	k := keysOf(tenant)
	return r.holder(ctx, k.pb+playbook, k.sess)
}

func (r *Redis) holder(ctx context.Context, key, sessPrefix string) (Holder, error) {
	j, err := holderScript.Run(ctx, r.client, []string{key}, sessPrefix).Text()
	if errors.Is(err, redis.Nil) {
		return Holder{}, ErrNotHeld
	}
	if err != nil {
		return Holder{}, redisErr(err)
	}
	return decodeHolder(j)
}

func (r *Redis) ForceRelease(ctx context.Context, tenant, sessionID string) (Holder, error) {
	if err := validTenant(tenant); err != nil {
		return Holder{}, err
	}
	k := keysOf(tenant)
	j, err := forceReleaseScript.Run(ctx, r.client,
		[]string{k.sess + sessionID, k.live}, sessionID, k.user, k.pb, k.sess,
	).Text()
	if errors.Is(err, redis.Nil) {
		return Holder{}, ErrNotHeld
	}
	if err != nil {
		return Holder{}, redisErr(err)
	}
	return decodeHolder(j)
}

func (r *Redis) CheckFence(ctx context.Context, h Holder) error {
	if err := validHolder(h); err != nil {
		return err
	}
	k := keysOf(h.Tenant)
	ok, err := checkFenceScript.Run(ctx, r.client,
		[]string{k.pb + h.Playbook, k.sess + h.SessionID, k.fence + h.Playbook},
		h.SessionID, h.Fence,
	).Int()
	if err != nil {
		return redisErr(err)
	}
	if ok != 1 {
		return ErrStaleFence
	}
	return nil
}

func (r *Redis) List(ctx context.Context, tenant string) ([]Holder, error) {
	if err := validTenant(tenant); err != nil {
		return nil, err
	}
	k := keysOf(tenant)
	js, err := listScript.Run(ctx, r.client, []string{k.live}, k.sess).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr(err)
	}
	out := make([]Holder, 0, len(js))
	for _, j := range js {
		h, err := decodeHolder(j)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	sortHolders(out)
	return out, nil
}

func (r *Redis) Ping(ctx context.Context) error { return redisErr(r.client.Ping(ctx).Err()) }

func decodeHolder(j string) (Holder, error) {
	var h Holder
	if err := json.Unmarshal([]byte(j), &h); err != nil {
		return Holder{}, fmt.Errorf("editlock: redis: bad holder record: %w", err)
	}
	return h, nil
}

// fenceKeepFor is how long the fence counter outlives the last lease.
func fenceKeepFor(ttl time.Duration) time.Duration { return max(ttl, fenceKeep) }

func sortHolders(hs []Holder) {
	slices.SortFunc(hs, func(a, b Holder) int {
		if c := a.AcquiredAt.Compare(b.AcquiredAt); c != 0 {
			return c
		}
		return strings.Compare(a.SessionID, b.SessionID)
	})
}

func redisErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("editlock: redis: %w", err)
}
