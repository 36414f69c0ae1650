import VSwiftPacket

/// Where a LISP port's encapsulated packets go now, or why they cannot: data for `show`, which
/// the control plane words (the datapath builds no text).
public enum TunnelState: Sendable, Equatable {
    /// remote_ip=flow: the remote comes from each packet's tun_dst; `resolvedNextHops` of the next
    /// hops the resolver knows are usable.
    case remoteFromFlow(resolvedNextHops: Int)
    /// remote_ip=map: the remote is the map-cache's RLOC for each inner destination, looked up in
    /// instance `instanceID`; `entries` in the published map-cache (all instances; nil: nothing
    /// published yet), `resolvedNextHops` of the next hops the resolver knows are usable.
    case remoteFromMap(instanceID: UInt32, entries: Int?, resolvedNextHops: Int)
    /// A fixed remote and the resolver's latest answer for it (nil: no answer yet).
    case remote(IPAddress, TunnelRoute?)
}

/// The resolver's answer for one remote RLOC, from the kernel's route and neighbour tables.
public enum TunnelRoute: Sendable, Equatable {
    /// No route to `remote`.
    case noRoute(remote: IPAddress)
    /// The route leaves by a device that is not a vswift port: its name, or nil when the kernel
    /// did not say (then `ifindex`).
    case notAPort(remote: IPAddress, device: String?, ifindex: UInt32)
    /// The route's device has no address of the remote's family to send from.
    case noSource(remote: IPAddress, device: String)
    /// The route's device has no Ethernet address.
    case noEthernetAddress(device: String)
    /// The next hop's MAC is being resolved (ARP / neighbour solicitation).
    case resolving(device: String, gateway: IPAddress?, nextHop: IPAddress)
    /// Usable: packets leave by `device` (via `gateway`, if any) from `source` to `nextHopMAC`.
    /// `mtu` 0: no limit known.
    case resolved(device: String, gateway: IPAddress?, source: IPAddress, nextHopMAC: UInt64, mtu: UInt32,
                  checksumOffloaded: Bool)
}
