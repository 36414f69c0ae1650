import VSwiftPacket

/// Where the underlay is for `remote_ip=map` ports, from what we registered: each local RLOC
/// registered for our EIDs (configured, or defaulted from the route toward the map-servers) is an
/// address remote sites were told to send LISP to, so it is an underlay endpoint on the device
/// that holds it — that device's port when it is an underlay or AF_XDP port of vswift, or the
/// whole bridge when it is a bridge's internal port (as a route's endpoint is, `UnderlayEndpoint`).
/// An RLOC no vswift port holds (a kernel-only device, or no device: an address that went away)
/// gives none: LISP to it is not ours to decapsulate.
///
/// This does not depend on how the mapping system is reached: a site registering an IPv6 RLOC
/// hears IPv6 LISP at it (and refuses a first packet from an unknown site, asking the mapping
/// system about its source EID) even when its map-servers and map-resolvers are IPv4 only.
enum RegisteredRLOCEndpoints {
    /// Most registered RLOCs turned into endpoints (the worker holds `Worker.maxLocalRLOCs`
    /// endpoints in all; these come first, route endpoints fill the rest).
    static let maxEndpoints = 16

    /// The endpoints of `rlocs` (in order, distinct, at most `maxEndpoints`), given the devices
    /// holding the host's addresses and the devices vswift can send on.
    static func endpoints(for rlocs: [IPAddress], addressDevices: [(address: IPAddress, ifindex: UInt32)],
                          egress: [UInt32: TunnelResolver.Egress]) -> [UnderlayEndpoint] {
        var result: [UnderlayEndpoint] = []
        for rloc in rlocs where result.count < maxEndpoints {
            guard let device = addressDevices.first(where: { $0.address == rloc }),
                  let out = egress[device.ifindex] else { continue }
            let endpoint = UnderlayEndpoint(localRLOC: rloc, port: out.port, bridge: out.bridge)
            if !result.contains(endpoint) { result.append(endpoint) }
        }
        return result
    }
}
