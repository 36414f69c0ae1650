import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

// MARK: Telling the sites we talk to that our mapping changed (RFC 9301 §6.1)

extension XTRControlPlane {
    /// At most this many sites are solicited per change: the sites in our map-cache, most
    /// recently used first (bounded work, whatever the cache holds).
    static let solicitedSitesLimit = 64
    /// At most this many SMRs per change (sites × changed prefixes).
    static let solicitationsLimit = 256

    /// The EID prefixes whose record differs between `old` and `new` (added, removed or changed),
    /// in `new`'s order then `old`'s.
    static func changedPrefixes(_ old: [MappingRecord], _ new: [MappingRecord]) -> [WirePrefix] {
        var changed: [WirePrefix] = []
        for record in new where !old.contains(record) && !changed.contains(record.eid) { changed.append(record.eid) }
        for record in old where !new.contains(where: { $0.eid == record.eid }) && !changed.contains(record.eid) {
            changed.append(record.eid)
        }
        return changed
    }

    /// After our registered mapping changed (an RLOC moved, an EID was added or removed), the
    /// ITRs that cached the old one would keep encapsulating to it until its TTL (1440 minutes)
    /// ends. RFC 9301 §6.1: the ETR sends them a Solicit-Map-Request (a Map-Request with the S bit
    /// naming the changed EID prefix), and each ITR that caches it asks the mapping system again
    /// (an SMR-invoked Map-Request, never trusting the SMR's sender). We do not know which ITRs
    /// cached us; the sites in our own map-cache are the ones we talk to, so they get the SMRs at
    /// their RLOC's control port: one per changed prefix (§5.2: "a sender MUST only send
    /// Map-Requests containing one record"), D set (§5.2: an SMR "doesn't need a Map-Reply
    /// returned"), at most `solicitationsLimit` in all. Sent once per change, not retransmitted: a
    /// lost SMR leaves that site to its TTL or to its first packet from our new RLOC, which its
    /// ETR refuses and answers by asking the mapping system about our EID (Worker+MapCache.swift).
    mutating func solicitMapRequests(changed prefixes: [WirePrefix], now: Double) -> [OutgoingDatagram] {
        guard !prefixes.isEmpty else { return [] }
        var out: [OutgoingDatagram] = []
        let itrRLOCs = localRLOCs.prefix(32).map { LISPAddress($0) }
        sites: for site in mapCache.learnedLocators(limit: Self.solicitedSitesLimit) {
            for prefix in prefixes {
                guard out.count < Self.solicitationsLimit else { break sites }
                let smr = MapRequest(nonce: Nonce.fresh(), itrRLOCs: itrRLOCs, records: [prefix],
                                     solicitMapRequest: true, dontMapReply: true)
                guard let bytes = try? ControlMessage.mapRequest(smr).encoded() else { continue }
                counters.count(.sentSMR)
                out.append(OutgoingDatagram(destination: site, destinationPort: lispControlPort, bytes: bytes))
            }
        }
        return out
    }
}
