import VSwiftPacket

/// Which LISP ports XDP may decapsulate for, from the datapath's configuration (DESIGN.md, "XDP
/// flow cache", *LISP decapsulation in XDP*). Pure: the datapath gives it its LISP ports in the
/// workers' order, the tunnel resolver's published next hops and its underlay devices, and calls
/// it again whenever any of them changes; `XDPDecapEntries.plan` then picks the entries.
enum XDPFlowCacheLISPIngress {
    /// The ports, in `ordered` order (the workers' `tunnelPorts`, the order `receiveTunnelled`
    /// tries them), that may get a decap entry, with their egress where the worker would hear
    /// their remote: the next hop the workers give the port (found by (remote, local_ip,
    /// dst_port), as `setTunnelRouting` does) has a local RLOC and leaves straight out of an
    /// underlay device (a bridge's ports run in port mode, which consults no decap entry; a
    /// bridge device port is such a port too). Left out: `remote_ip=flow`/`map` ports (their trust
    /// is per source) and `key=flow` ports (any instance id) — and a fixed port after a fixed
    /// `key=flow` port heard at the same (device, local RLOC, remote, UDP port), since that one
    /// takes every instance id there in the worker's loop.
    static func ports(ordered: [(slot: PortSlot, options: LISPPortOptions)], nextHops: [TunnelNextHop],
                      underlays: [PortSlot: UInt32]) -> [XDPDecapPort] {
        struct Heard: Hashable {
            var ifindex: UInt32
            var local: IPAddress
            var remote: IPAddress
            var udpPort: UInt16
        }
        var takenByFlowKey: Set<Heard> = []
        var result: [XDPDecapPort] = []
        for (slot, options) in ordered {
            guard case .address(let remote) = options.remote else { continue }
            let local = options.local ?? IPAddress()
            guard let hop = nextHops.first(where: { $0.remote == remote && $0.local == local && $0.udpPort == options.udpPort }),
                  hop.localRLOC != IPAddress(), hop.egressBridge == .unbridged,
                  let ifindex = underlays[hop.egressPort], ifindex != 0 else { continue }
            let heard = Heard(ifindex: ifindex, local: hop.localRLOC, remote: remote, udpPort: options.udpPort)
            guard case .id(let instanceID) = options.key else {
                // key=flow: the worker's loop stops at it for every instance id (if local_ip lets it hear).
                if options.local == nil || options.local == hop.localRLOC { takenByFlowKey.insert(heard) }
                continue
            }
            guard !takenByFlowKey.contains(heard) else { continue }
            result.append(XDPDecapPort(
                port: .init(inPort: XDPFlowCacheTranslation.inPortID(slot), remote: remote, local: options.local,
                            key: instanceID, udpPort: options.udpPort, egress: (hop.localRLOC, ifindex)),
                slot: slot, underlay: hop.egressPort))
        }
        return result
    }
}
