//! Flash-sale admission on Redis: one sale's keys share a hash tag (`{sale}`), so every
//! script runs on one node of a cluster, atomically.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{ErrorKind, PortError, PortResult, UserId};
use redis::Script;
use saga::{Admission, AdmissionQueue, SaleConfig, check_sale, lottery_rank};

use super::{Redis, error};

/// Opens a sale once; the same configuration again is a no-op, another one is refused (0).
const OPEN: &str = r"#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then
  local m = redis.call('HMGET', KEYS[1], 'start', 'spots', 'rate', 'ttl', 'seed')
  if m[1] == ARGV[1] and m[2] == ARGV[2] and m[3] == ARGV[3] and m[4] == ARGV[4]
     and m[5] == ARGV[5] then
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'start', ARGV[1], 'spots', ARGV[2], 'rate', ARGV[3],
           'ttl', ARGV[4], 'seed', ARGV[5], 'count', 0, 'seq', 0)
return 1
";

/// Where a shopper stands, joining (ARGV[4] = '1') or not: {-1} no sale, {1, until} admitted,
/// {2} closed, {0, position} waiting, {3} not in the room. A join before the start scores the
/// shopper's lottery rank (ARGV[3]); after it, 2^52 plus the arrival number.
const STAND: &str = r"#!lua
local m = redis.call('HMGET', KEYS[1], 'start', 'spots', 'count')
if not m[1] then return {-1} end
local held = redis.call('HGET', KEYS[3], ARGV[1])
if held then return {1, tonumber(held)} end
local r = redis.call('ZRANK', KEYS[2], ARGV[1])
if tonumber(m[3]) >= tonumber(m[2]) then
  if r or ARGV[4] == '1' then return {2} end
  return {3}
end
if not r then
  if ARGV[4] ~= '1' then return {3} end
  local score = ARGV[3]
  if tonumber(ARGV[2]) >= tonumber(m[1]) then
    score = string.format('%d', 4503599627370496 + redis.call('HINCRBY', KEYS[1], 'seq', 1))
  end
  redis.call('ZADD', KEYS[2], score, ARGV[1])
  r = redis.call('ZRANK', KEYS[2], ARGV[1])
end
return {0, r + 1}
";

/// Admits what the rate has earned since the start, lowest scores first, never beyond the
/// spots: {'ok', shopper, ...} or {'nosale'}. Elapsed time is capped so that elapsed × rate
/// stays an exact double (the cap is far beyond any number of spots).
const ADMIT: &str = r"#!lua
local m = redis.call('HMGET', KEYS[1], 'start', 'spots', 'rate', 'ttl', 'count')
if not m[1] then return {'nosale'} end
local rate = tonumber(m[3])
local elapsed = tonumber(ARGV[1]) - tonumber(m[1])
if elapsed < 0 then elapsed = 0 end
local cap = math.floor(9007199254740992 / rate)
if elapsed > cap then elapsed = cap end
local earned = math.floor(elapsed * rate / 1000)
if earned > tonumber(m[2]) then earned = tonumber(m[2]) end
local n = earned - tonumber(m[5])
local out = {'ok'}
if n <= 0 then return out end
local popped = redis.call('ZPOPMIN', KEYS[2], n)
local expiry = string.format('%d', tonumber(ARGV[1]) + tonumber(m[4]))
for i = 1, #popped, 2 do
  redis.call('HSET', KEYS[3], popped[i], expiry)
  out[#out + 1] = popped[i]
end
redis.call('HINCRBY', KEYS[1], 'count', #out - 1)
return out
";

/// The [`AdmissionQueue`] on Redis, shared by every instance: a sale is a hash (configuration,
/// admitted count, arrival counter), a sorted set of those waiting (scored by lottery rank
/// before the start, by arrival after) and a hash of those admitted (until when). Joining,
/// reading and admitting are one script each, so a hundred tickers at once still admit no more
/// than the spots.
#[derive(Debug, Clone)]
pub struct RedisAdmissionQueue {
    redis: Redis,
    scripts: Arc<(Script, Script, Script)>,
    /// Each sale's lottery seed, fixed once the sale is open.
    seeds: Arc<Mutex<HashMap<String, u64>>>,
}

impl RedisAdmissionQueue {
    pub(crate) fn new(redis: Redis) -> Self {
        RedisAdmissionQueue {
            redis,
            scripts: Arc::new((Script::new(OPEN), Script::new(STAND), Script::new(ADMIT))),
            seeds: Arc::default(),
        }
    }

    fn keys(&self, sale: &str) -> [String; 3] {
        ["meta", "q", "in"].map(|k| self.redis.key("aq", &format!("{{{sale}}}:{k}")))
    }

    async fn seed(&self, sale: &str) -> PortResult<u64> {
        if let Some(s) = self
            .seeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sale)
        {
            return Ok(*s);
        }
        let [meta, _, _] = self.keys(sale);
        let mut conn = self.redis.conn();
        let seed: Option<String> = redis::cmd("HGET")
            .arg(&meta)
            .arg("seed")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        let seed = seed
            .ok_or_else(|| unknown(sale))?
            .parse::<u64>()
            .map_err(|e| PortError::new(ErrorKind::Internal, format!("stored seed: {e}")))?;
        self.seeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sale.to_owned(), seed);
        Ok(seed)
    }

    async fn stand(
        &self,
        sale: &str,
        shopper: &UserId,
        join: Option<(DateTime<Utc>, u64)>,
    ) -> PortResult<Option<Admission>> {
        let [meta, q, admitted] = self.keys(sale);
        let (now, rank) = join.map_or((0, 0), |(now, rank)| (now.timestamp_millis(), rank));
        let mut conn = self.redis.conn();
        let answer: Vec<i64> = self
            .scripts
            .1
            .key(meta)
            .key(q)
            .key(admitted)
            .arg(shopper.as_str())
            .arg(now)
            .arg(rank)
            .arg(if join.is_some() { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        match answer.as_slice() {
            [-1] => Err(unknown(sale)),
            [1, until] => Ok(Some(Admission::Admitted {
                until: DateTime::from_timestamp_millis(*until).ok_or_else(|| {
                    PortError::new(ErrorKind::Internal, "stored admission out of range")
                })?,
            })),
            [2] => Ok(Some(Admission::Closed)),
            [0, position] => Ok(Some(Admission::Waiting {
                position: u64::try_from(*position).unwrap_or(0),
            })),
            [3] => Ok(None),
            other => Err(PortError::new(
                ErrorKind::Internal,
                format!("the admission script answered {other:?}"),
            )),
        }
    }
}

fn unknown(sale: &str) -> PortError {
    PortError::new(ErrorKind::NotFound, format!("sale {sale}"))
}

fn ms(d: TimeDelta) -> i64 {
    d.num_milliseconds()
}

#[async_trait]
impl AdmissionQueue for RedisAdmissionQueue {
    async fn open(&self, sale: &str, config: &SaleConfig) -> PortResult<()> {
        check_sale(sale)?;
        config.validate()?;
        let [meta, _, _] = self.keys(sale);
        let mut conn = self.redis.conn();
        let ok: i64 = self
            .scripts
            .0
            .key(meta)
            .arg(config.starts_at.timestamp_millis())
            .arg(config.spots)
            .arg(config.admit_per_sec)
            .arg(ms(config.admission_ttl))
            .arg(config.seed.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        if ok == 1 {
            Ok(())
        } else {
            Err(PortError::new(
                ErrorKind::Conflict,
                format!("sale {sale} is open with another configuration"),
            ))
        }
    }

    async fn join(
        &self,
        sale: &str,
        shopper: &UserId,
        now: DateTime<Utc>,
    ) -> PortResult<Admission> {
        check_sale(sale)?;
        let rank = lottery_rank(self.seed(sale).await?, shopper);
        self.stand(sale, shopper, Some((now, rank)))
            .await?
            .ok_or_else(|| PortError::new(ErrorKind::Internal, "a join left no standing"))
    }

    async fn status(&self, sale: &str, shopper: &UserId) -> PortResult<Option<Admission>> {
        check_sale(sale)?;
        self.stand(sale, shopper, None).await
    }

    async fn admit(&self, sale: &str, now: DateTime<Utc>) -> PortResult<Vec<UserId>> {
        check_sale(sale)?;
        let [meta, q, admitted] = self.keys(sale);
        let mut conn = self.redis.conn();
        let answer: Vec<String> = self
            .scripts
            .2
            .key(meta)
            .key(q)
            .key(admitted)
            .arg(now.timestamp_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        match answer.split_first() {
            Some((status, names)) if status == "ok" => names
                .iter()
                .map(|n| {
                    UserId::new(n).map_err(|e| {
                        PortError::new(ErrorKind::Internal, format!("stored shopper: {e}"))
                    })
                })
                .collect(),
            _ => Err(unknown(sale)),
        }
    }
}
