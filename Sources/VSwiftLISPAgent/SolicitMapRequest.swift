import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

// MARK: Telling the sites we talk to that our mapping changed (RFC 9301 §6.1)

extension XTRControlPlane {
    /// At most this many sites are solicited per change: the sites in our map-cache, most
    /// recently used first (bounded work, whatever the cache holds).
    static let solicitedSitesLimit = 64

    /// At most this many SMRs per change (sites × our prefixes), so a change costs bounded work.
    static let solicitMapRequestLimit = 256

    /// After our registered mapping changed (an RLOC moved, an EID was added or removed), the
    /// ITRs that cached the old one would keep encapsulating to it until its TTL (1440 minutes)
    /// ends. RFC 9301 §6.1: the ETR sends "Map-Requests with the SMR bit set for each locator in
    /// each Map-Cache entry" it caches, and each ITR that caches the changed EID asks the mapping
    /// system again (an SMR-invoked Map-Request, never trusting the SMR's sender). We do not know
    /// which ITRs cached us; the sites in our own map-cache are the ones we talk to.
    ///
    /// One record per SMR (RFC 9301 §5.3: "a sender MUST only send Map-Requests containing one
    /// record"), so a site gets one SMR per local prefix: the Source EID is our changed prefix's
    /// address, the record the site's own prefix from our map-cache (the entry the SMR is sent
    /// for, in the same instance id, of the same family when we have one). That is the layout
    /// OpenOverlayRouter sends and the only one it acts on: an SMR with several records it
    /// discards, and it asks again about the SMR's Source EID, after checking the record is one of
    /// its own prefixes (bench/results/archive/2026-12-07-interop-oor-xtr.md). Our own receiver
    /// (handleSMR) takes the changed EID from either field. Sent once per change, not
    /// retransmitted: a lost SMR leaves that site to its TTL or to its first packet from our new
    /// RLOC, which its ETR refuses and answers by asking the mapping system about our EID
    /// (Worker+MapCache.swift).
    mutating func solicitMapRequests(now: Double) -> [OutgoingDatagram] {
        let ours = registration.records.prefix(32).compactMap { ControlAddressing.cachePrefix($0.eid) }
        guard !ours.isEmpty else { return [] }
        let itrRLOCs = localRLOCs.prefix(32).map { LISPAddress($0) }
        var out: [OutgoingDatagram] = []
        for (site, theirs) in solicitedSites() {
            for changed in ours {
                guard out.count < Self.solicitMapRequestLimit else { return out }
                let sameInstance = theirs.filter { $0.instanceID == changed.instanceID }
                guard let record = sameInstance.first(where: { $0.isIPv4 == changed.isIPv4 }) ?? sameInstance.first else { continue }
                let smr = MapRequest(nonce: Nonce.fresh(),
                                     sourceEID: ControlAddressing.wireAddress(changed.address, instanceID: changed.instanceID),
                                     itrRLOCs: itrRLOCs, records: [ControlAddressing.wirePrefix(record)],
                                     solicitMapRequest: true)
                guard let bytes = try? ControlMessage.mapRequest(smr).encoded() else { continue }
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
