import VSwiftPacket

/// RFC 9301's per-destination rate limits, one token bucket per destination RLOC:
/// - §5.4: "Map-Replies MUST be rate limited. It is RECOMMENDED that a Map-Reply for the same
///   destination RLOC be sent to no more than one packet every 3 seconds." (our Map-Replies and
///   RLOC-probe replies, `XTRControlPlane.mapReplyLimit`);
/// - §6.1: "It is RECOMMENDED that the SMR sender rate limit a Map-Request for the same
///   destination RLOC to no more than one packet every 3 seconds." (`smrLimit`).
///
/// The sustained rate is the RFC's, one every `interval`; a bucket holds `burst` tokens, so the
/// first few to a destination go together: one ITR that starts flows to our IPv4 and IPv6 EIDs at
/// once, or probes both entries' RLOCs, gets both answers now rather than the second 3 s later,
/// and one site gets the SMR for each of our changed prefixes (one record per SMR, §5.2) in the
/// same round. A deliberate reading of a RECOMMENDED: with a burst of 1 a second Map-Request
/// within 3 s would be retried by its ITR until the bucket allowed it, adding seconds to a first
/// packet's latency, and a second RLOC-probe would make its sender mark our locator down.
///
/// Bounded: at most `capacity` destinations. When full, buckets that have refilled (nothing to
/// remember) are forgotten, at most once per second so a flood of new destinations does not cost
/// a scan each; when none has, the new destination is refused (`refusedFull`).
struct DestinationRateLimit {
    let interval: Double
    let burst: Double
    let capacity: Int

    struct Bucket {
        var tokens: Double
        var updatedAt: Double
    }

    private(set) var buckets: [IPAddress: Bucket] = [:]
    private var lastPrune = -Double.infinity

    enum Outcome: Equatable { case allowed, limited, full }

    init(interval: Double = 3, burst: Int = 4, capacity: Int = 4096) {
        precondition(interval > 0 && burst >= 1 && capacity >= 1)
        self.interval = interval
        self.burst = Double(burst)
        self.capacity = capacity
    }

    /// Takes a token for one datagram to `destination` at `now`.
    mutating func take(_ destination: IPAddress, now: Double) -> Outcome {
        if var bucket = buckets[destination] {
            refill(&bucket, now: now)
            guard bucket.tokens >= 1 else {
                buckets[destination] = bucket
                return .limited
            }
            bucket.tokens -= 1
            buckets[destination] = bucket
            return .allowed
        }
        if buckets.count >= capacity {
            if now - lastPrune >= 1 {
                lastPrune = now
                buckets = buckets.filter { now - $0.value.updatedAt < (burst - $0.value.tokens) * interval }
            }
            guard buckets.count < capacity else { return .full }
        }
        buckets[destination] = Bucket(tokens: burst - 1, updatedAt: now)
        return .allowed
    }

    private func refill(_ bucket: inout Bucket, now: Double) {
        guard now > bucket.updatedAt else { return }
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updatedAt) / interval)
        bucket.updatedAt = now
    }
}

extension XTRControlPlane {
    /// A datagram to `destination` under `limit`: true when it may go; else counted
    /// (`destination_rate_limited`, or `table_full` when the table of destinations is full).
    mutating func mayAnswer(_ destination: IPAddress, smr: Bool, now: Double) -> Bool {
        let outcome = smr ? smrLimit.take(destination, now: now) : mapReplyLimit.take(destination, now: now)
        switch outcome {
        case .allowed: return true
        case .limited: counters.count(.refusedDestinationRateLimited)
        case .full: counters.count(.refusedTableFull)
        }
        return false
    }
}
