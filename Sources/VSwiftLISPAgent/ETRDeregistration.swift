import VSwiftLISPControl
import VSwiftPacket

/// Deregistration (RFC 9301 §5.6, §5.4, §8.2): when a local EID prefix is removed, or a
/// map-server or the whole control plane goes, the map-servers that had our records are told at
/// once instead of keeping them until their registration times out (§8.2: "A Map-Server SHOULD
/// time out and remove an ETR's registration if it has not received a valid Map-Register message
/// within the past three minutes"). A Map-Register carries the records as §5.4 defines them (§5.6:
/// "The definition of the rest of the Map-Register can be found in the EID-Record description in
/// Section 5.4"), where "If the TTL is 0, the entry MUST be removed from the cache immediately":
/// the withdrawn records go with Record TTL 0, authenticated as any Map-Register, with a nonce
/// from the same increasing series (§5.6), M clear (nothing to acknowledge: a map-server that
/// answered would find no message awaiting it) and sent once — a lost one leaves the registration
/// to time out as before.
extension ETRRegistration {
    /// Records one map-server has had from us (some Map-Register carrying them was sent) that
    /// the new configuration withdraws: prefixes no longer local, or all of them when the
    /// map-server itself is no longer configured. A map-server kept under a new key is not told:
    /// the new registration replaces the old.
    func withdrawals(for configuration: LISPControlConfiguration, newRecords: [MappingRecord])
        -> [(server: MapServerConfiguration, records: [MappingRecord])]
    {
        var result: [(server: MapServerConfiguration, records: [MappingRecord])] = []
        let remaining = Set(newRecords.map(\.eid))
        for server in servers {
            var sent: [MappingRecord] = []
            var seen = Set<WirePrefix>()
            for message in server.messages where message.lastSentAt != nil {
                for record in message.records where seen.insert(record.eid).inserted { sent.append(record) }
            }
            let kept = configuration.mapServers.contains { $0.address == server.configuration.address }
            let gone = kept ? sent.filter { !remaining.contains($0.eid) } : sent
            if !gone.isEmpty { result.append((server.configuration, gone)) }
        }
        return result
    }

    /// The Map-Registers withdrawing `records` from `server`: Record TTL 0, M clear, in as many
    /// messages as §5's size needs.
    mutating func withdrawalDatagrams(_ records: [MappingRecord], to server: MapServerConfiguration,
                                      counters: inout ControlCounters) -> [OutgoingDatagram] {
        let withdrawn = records.map { record -> MappingRecord in
            var copy = record
            copy.ttl = 0
            return copy
        }
        var out: [OutgoingDatagram] = []
        let groups = RecordBatching.groups(withdrawn, headerBytes: Self.registerHeaderBytes + server.key.sentLength,
                                           maxPayload: RecordBatching.maxPayload(ipv4: server.address.isIPv4))
        for group in groups {
            let register = MapRegister(nonce: registerNonces.next(), records: group, wantMapNotify: false)
            guard let bytes = try? register.encoded(authenticatingWith: server.key) else {
                counters.count(.refusedNotConfigured)
                continue
            }
            counters.count(.sentDeregistration)
            out.append(OutgoingDatagram(destination: server.address, destinationPort: lispControlPort, bytes: bytes))
        }
        return out
    }
}
