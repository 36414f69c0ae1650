import VSwiftClassifier
import VSwiftDatapath
import VSwiftMapCache
import VSwiftPacket

/// remote_ip=map in the harness: the LISP port (slot 2) looks inner destinations up in a
/// map-cache snapshot the test publishes, as `Datapath.publishMapCache` hands one to every worker.
extension PipelineHarness {
    /// Turns the harness's LISP port into `remote_ip=map` in instance `instanceID`, with a resolved
    /// next hop for each of `rlocs` leaving by the underlay device (slot 1 when the harness
    /// encapsulates, slot 0 when it decapsulates), from the local RLOC of the RLOC's family (so
    /// LISP from them arriving on the underlay is on an underlay endpoint).
    /// `registered`: local RLOCs we registered, each an underlay endpoint on the underlay device
    /// (as `RegisteredRLOCEndpoints` derives them from the device holding the address).
    public func useMapCache(instanceID: UInt32, rlocs: [IPAddress], encapsulating: Bool = true, registered: [IPAddress] = []) {
        worker.setTunnelPort(2, bridge: 0, state: TunnelPortState(LISPPortOptions(remote: .map, key: .id(instanceID))))
        let underlay = PortSlot(rawValue: encapsulating ? 1 : 0)
        worker.setTunnelRouting(localRLOCs: [Self.localRLOC, Self.localRLOC6], nextHops: Self.mapNextHops(rlocs, encapsulating: encapsulating),
                                endpoints: registered.map { UnderlayEndpoint(localRLOC: $0, port: underlay, bridge: .unbridged) })
    }

    /// Adds a second `remote_ip=map` LISP port, slot 3 (OpenFlow port 3), in instance
    /// `instanceID` with destination UDP port `udpPort`, with resolved next hops to `rlocs` for
    /// that port, and replaces the flow table with `rules` (which may now name port 3). The
    /// harness must encapsulate.
    public func addMapPort(instanceID: UInt32, udpPort: UInt16, rlocs: [IPAddress], rules: [DatapathRule]) throws {
        addLISPPort(3, ofport: 3, options: LISPPortOptions(remote: .map, key: .id(instanceID), udpPort: udpPort), members: [0, 2, 3])
        worker.setTunnelRouting(localRLOCs: [Self.localRLOC, Self.localRLOC6],
                                nextHops: Self.mapNextHops(rlocs, encapsulating: true)
                                    + Self.mapNextHops(rlocs, encapsulating: true, udpPort: udpPort))
        try setFlowTable(rules, slots: [1: 0, 2: 2, 3: 3])
    }

    /// Resolved next hops to `rlocs` by the underlay device.
    static func mapNextHops(_ rlocs: [IPAddress], encapsulating: Bool, udpPort: UInt16 = LISP.udpPort) -> [TunnelNextHop] {
        rlocs.map { rloc in
            let local = rloc.isIPv4 ? localRLOC : localRLOC6
            var hop = TunnelNextHop(remote: rloc, local: IPAddress(), udpPort: udpPort, status: .resolved)
            hop.egressPort = PortSlot(rawValue: encapsulating ? 1 : 0)
            hop.localRLOC = local
            hop.parameters = LISP.EncapsulationParameters(
                ethernetDestination: nextHopMAC, ethernetSource: deviceMAC, source: local, destination: rloc,
                udpDestinationPort: udpPort)
            return hop
        }
    }

    /// Publishes `snapshot` to the worker (between runs, as the park handshake would).
    public func publishMapCache(_ snapshot: MapCacheSnapshot) {
        keptAlive.append(worker.installMapCache(snapshot))
        keptAlive.append(snapshot)
    }

    /// Replaces the next hops with resolved ones to `rlocs` only (as the resolver's new view would),
    /// leaving the port and its counters as they are.
    public func setMapNextHops(_ rlocs: [IPAddress]) {
        worker.setTunnelRouting(localRLOCs: [Self.localRLOC, Self.localRLOC6], nextHops: Self.mapNextHops(rlocs, encapsulating: true))
    }

    /// Moves the start of the worker's map-cache resolution epoch `seconds` into the past: the
    /// worker's clock, which a test cannot wait for.
    public func ageMapCacheResolutions(seconds: UInt64) {
        worker.ageMapCacheResolutions(by: seconds)
    }

    /// Moves up to `limit` queued misses into `misses`.
    public func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int = .max) -> Int {
        worker.drainMapCacheMisses(into: &misses, limit: limit)
    }
}
