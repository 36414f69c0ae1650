import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

// MARK: Telling the sites we talk to that our mapping changed (RFC 9301 §6.1)

extension XTRControlPlane {
    /// At most this many sites are solicited per change: the sites in our map-cache, most
    /// recently used first (bounded work, whatever the cache holds).
    static let solicitedSitesLimit = 64

    /// After our registered mapping changed (an RLOC moved, an EID was added or removed), the
    /// ITRs that cached the old one would keep encapsulating to it until its TTL (1440 minutes)
    /// ends. RFC 9301 §6.1: the ETR sends them a Solicit-Map-Request (a Map-Request with the S bit,
    /// naming the changed EID prefixes), and each ITR that caches one of them asks the mapping
    /// system again (an SMR-invoked Map-Request, never trusting the SMR's sender). We do not know
    /// which ITRs cached us; the sites in our own map-cache are the ones we talk to, so they get
    /// one SMR each at their RLOC's control port. Sent once per change, not retransmitted: a lost
    /// SMR leaves that site to its TTL or to its first packet from our new RLOC, which its ETR
    /// refuses and answers by asking the mapping system about our EID (Worker+MapCache.swift).
    mutating func solicitMapRequests(now: Double) -> [OutgoingDatagram] {
        let prefixes = registration.records.prefix(32).map(\.eid)
        guard !prefixes.isEmpty else { return [] }
        var out: [OutgoingDatagram] = []
        for site in mapCache.learnedLocators(limit: Self.solicitedSitesLimit) {
            let smr = MapRequest(nonce: Nonce.fresh(), itrRLOCs: localRLOCs.prefix(32).map { LISPAddress($0) },
                                 records: Array(prefixes), solicitMapRequest: true)
            guard let bytes = try? ControlMessage.mapRequest(smr).encoded() else { continue }
            counters.count(.sentSMR)
            out.append(OutgoingDatagram(destination: site, destinationPort: lispControlPort, bytes: bytes))
        }
        return out
    }
}
