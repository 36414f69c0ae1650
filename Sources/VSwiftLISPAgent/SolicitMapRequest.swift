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
    /// ends. RFC 9301 §6.1: the ETR sends "Map-Requests with the SMR bit set for each locator in
    /// each Map-Cache entry" it caches, and each ITR that caches the changed EID asks the mapping
    /// system again (an SMR-invoked Map-Request, never trusting the SMR's sender). We do not know
    /// which ITRs cached us; the sites in our own map-cache are the ones we talk to.
    ///
    /// One record per SMR (§5.2: "a sender MUST only send Map-Requests containing one record"), so
    /// a site gets one SMR per changed prefix of ours (added, moved or removed): the Source EID is
    /// the changed prefix's address, the record the site's own prefix from our map-cache (the
    /// entry the SMR is sent for, in the same instance id, of the same family when we have one),
    /// D set (§5.2: an SMR "doesn't need a Map-Reply returned"). That is the layout
    /// OpenOverlayRouter sends and the only one it acts on: an SMR with several records it
    /// discards, and it asks again about the SMR's Source EID, after checking the record is one of
    /// its own prefixes (bench/results/archive/2026-12-07-interop-oor-xtr.md). Our own receiver
    /// (handleSMR) takes the changed EID from either field. At most `solicitationsLimit` in all.
    /// Sent once per change, not retransmitted: a lost SMR leaves that site to its TTL or to its
    /// first packet from our new RLOC, which its ETR refuses and answers by asking the mapping
    /// system about our EID (Worker+MapCache.swift).
    mutating func solicitMapRequests(changed prefixes: [WirePrefix], now: Double) -> [OutgoingDatagram] {
        let changed = prefixes.prefix(32).compactMap { ControlAddressing.cachePrefix($0) }
        guard !changed.isEmpty else { return [] }
        let itrRLOCs = localRLOCs.prefix(32).map { LISPAddress($0) }
        var out: [OutgoingDatagram] = []
        for (site, theirs) in solicitedSites() {
            for prefix in changed {
                guard out.count < Self.solicitationsLimit else { return out }
                let sameInstance = theirs.filter { $0.instanceID == prefix.instanceID }
                guard let record = sameInstance.first(where: { $0.isIPv4 == prefix.isIPv4 }) ?? sameInstance.first else { continue }
                let smr = MapRequest(nonce: Nonce.fresh(),
                                     sourceEID: ControlAddressing.wireAddress(prefix.address, instanceID: prefix.instanceID),
                                     itrRLOCs: itrRLOCs, records: [ControlAddressing.wirePrefix(record)],
                                     solicitMapRequest: true, dontMapReply: true)
                guard let bytes = try? ControlMessage.mapRequest(smr).encoded() else { continue }
                // §6.1: "the SMR sender rate limit a Map-Request for the same destination RLOC".
                guard mayAnswer(site, smr: true, now: now) else { continue }
                counters.count(.sentSMR)
                out.append(OutgoingDatagram(destination: site, destinationPort: lispControlPort, bytes: bytes))
            }
        }
        return out
    }

    /// The sites of our map-cache (RLOCs of its positive entries, most recently used first, at
    /// most `solicitedSitesLimit`), each with the prefixes we cache at it.
    func solicitedSites() -> [(IPAddress, [CachePrefix])] {
        var sites: [(IPAddress, [CachePrefix])] = []
        var index: [IPAddress: Int] = [:]
        for prefix in mapCache.leastRecentlyUsed.reversed() {
            guard let entry = mapCache.entry(prefix), entry.negative == nil else { continue }
            for locator in entry.locators {
                if let i = index[locator.address] {
                    sites[i].1.append(prefix)
                } else if sites.count < Self.solicitedSitesLimit {
                    index[locator.address] = sites.count
                    sites.append((locator.address, [prefix]))
                }
            }
        }
        return sites
    }
}
