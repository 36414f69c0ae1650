import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// A token bucket over the datagrams we send in answer to what arrives (Map-Replies, RLOC-probe
/// replies, Map-Notify-Acks): whatever the rate of requests, at most `rate` answers per second
/// (plus a burst of as many), so a flood of Map-Requests costs bounded work and cannot turn us
/// into a reflector (RFC 9301 §5.4: "Map-Replies MUST be rate limited"; §9: "filters and rate
/// limiters"). §5.4's RECOMMENDED one Map-Reply per destination RLOC every 3 seconds is
/// `DestinationRateLimit`, applied once the destination is known.
struct ReplyBudget {
    static let rate = 200.0
    private var tokens = ReplyBudget.rate
    private var updatedAt: Double

    init(now: Double) { updatedAt = now }

    mutating func take(now: Double) -> Bool {
        if now > updatedAt {
            tokens = min(Self.rate, tokens + (now - updatedAt) * Self.rate)
            updatedAt = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

extension XTRControlPlane {
    /// Type word and nonce (RFC 9301 §5.4), before the records.
    static let mapReplyHeaderBytes = 12

    /// A Map-Request that reached us as an ETR (plain, or in an ECM the map-server forwarded,
    /// RFC 9301 §8.3, §5.8): answered with a Map-Reply (RFC 9301 §5.5) carrying, for each EID
    /// asked, the record of the longest local EID prefix that covers it ("a Map-Reply returns an
    /// EID-Prefix with a mask-length that is less than or equal to the EID being requested") and
    /// those of our prefixes more specific than it,
    /// the request's nonce, P set for an RLOC-probe (§5.2 and §5.4 P bit). It goes to the first
    /// ITR-RLOC we can reach (one of a family we have a local RLOC of, else the first IPv4/IPv6
    /// one) at the request's source port (§5.5: "copied from the source port of the Map-Request";
    /// for an ECM, the inner UDP header's).
    mutating func answerMapRequest(_ request: MapRequest, replyPort: UInt16, now: Double) -> [OutgoingDatagram] {
        // The budget is taken first, so requests past it cost no lookup work either.
        guard replyBudget.take(now: now) else {
            counters.count(.refusedRateLimited)
            return []
        }
        var records: [MappingRecord] = []
        var matchedAny = false
        for asked in request.records {
            guard let prefix = ControlAddressing.cachePrefix(asked) else { continue }
            let answer = localRecords(answering: prefix)
            guard !answer.isEmpty else { continue }
            matchedAny = true
            for record in answer where !records.contains(record) { records.append(record) }
        }

        guard matchedAny else {
            counters.count(.refusedNotOurEID)
            return []
        }
        counters.count(request.probe ? .receivedRLOCProbe : .receivedMapRequest)
        // D (dont-map-reply, RFC 9301 §5.2): the sender wants no answer.
        if request.dontMapReply { return [] }
        guard let destination = replyDestination(request.itrRLOCs) else {
            counters.count(.refusedNoITRRLOC)
            return []
        }
        guard mayAnswer(destination, smr: false, now: now) else { return [] }
        // One Map-Reply answers one nonce, so it cannot be split like a Map-Register: it keeps the
        // records that fit one message to the destination's family (RFC 9301 §5: 576 bytes of
        // IPv4 or 1,280 of IPv6 packet), the first group in the order above (each asked EID's
        // covering record before its more specific ones, §5.5).
        let fitting = RecordBatching.groups(records, headerBytes: Self.mapReplyHeaderBytes,
                                            maxPayload: RecordBatching.maxPayload(ipv4: destination.isIPv4))
        if let first = fitting.first, first.count < records.count {
            records = first
            counters.count(.truncatedMapReply)
        }
        if request.probe {
            // p (§5.4): the locator this RLOC-probe reply comes from: ours, of the reply's family.
            for r in records.indices {
                if let l = records[r].locators.firstIndex(where: {
                    ControlAddressing.ip($0.address).map { $0.isIPv4 == destination.isIPv4 } ?? false
                }) {
                    records[r].locators[l].probed = true
                }
            }
        }
        let reply = MapReply(nonce: request.nonce, records: records, probe: request.probe)
        guard let bytes = try? ControlMessage.mapReply(reply).encoded() else {
            counters.count(.refusedMalformed)
            return []
        }
        counters.count(.sentMapReply)
        return [OutgoingDatagram(destination: destination, destinationPort: replyPort, bytes: bytes)]
    }

    /// The records answering a request for `prefix` (RFC 9301 §5.5, overlapping EID-Prefixes): the
    /// longest local prefix covering it, then every local prefix more specific than that one
    /// (asked for 10.1.5.5 with 10.1.0.0/16 and 10.1.1.0/24 configured, both go, so the ITR does
    /// not send 10.1.1.0/24's traffic to the /16's locators). Empty when no local prefix covers it.
    func localRecords(answering prefix: CachePrefix) -> [MappingRecord] {
        var best: (record: MappingRecord, prefix: CachePrefix)?
        for record in registration.records {
            guard let local = ControlAddressing.cachePrefix(record.eid), ControlAddressing.covers(local, prefix),
                  best.map({ local.length > $0.prefix.length }) ?? true
            else { continue }
            best = (record, local)
        }
        guard let best else { return [] }
        var result = [best.record]
        for record in registration.records {
            guard let local = ControlAddressing.cachePrefix(record.eid), local != best.prefix,
                  ControlAddressing.covers(best.prefix, local)
            else { continue }
            result.append(record)
        }
        return result
    }

    /// Where a Map-Reply goes among a request's ITR-RLOCs (RFC 9301 §5.5: "The ETR can choose a
    /// Routing Locator Address from one of the address families it supports").
    func replyDestination(_ itrRLOCs: [LISPAddress]) -> IPAddress? {
        let candidates = itrRLOCs.compactMap(ControlAddressing.ip)
        return candidates.first { candidate in localRLOCs.contains { $0.isIPv4 == candidate.isIPv4 } }
            ?? candidates.first
    }
}
