import VSwiftDatapath
import VSwiftPacket

// How `show` words the datapath's port state (the datapath hands over data only).

extension PortAttachment {
    /// "afxdp: xdp=native, bind=copy, queues=1", "lisp: …", or "" for internal ports.
    public var summary: String {
        switch kind {
        case .afxdp, .underlay:
            let prefix = kind == .underlay ? "underlay, afxdp" : "afxdp"
            var text = "\(prefix): xdp=\(xdpMode?.rawValue ?? "?"), bind=\(bindMode?.rawValue ?? "?"), queues=\(queues)"
            if kind == .underlay, let checksum = txChecksum {
                switch checksum {
                case .driver: text += ", tx checksum: offloaded to the driver"
                case .kernel: text += ", tx checksum: offloaded to the kernel (copy mode)"
                case .software:
                    text += ", tx checksum: software" + (txChecksumOffload == true ? "" : " (the driver offers no AF_XDP checksum offload)")
                }
            }
            return text
        case .lisp:
            return "lisp: " + (tunnelState?.text ?? "resolving")
        case .internal:
            return ""
        }
    }
}

extension TunnelState {
    /// e.g. "remote 192.0.2.2: eth0 via 10.0.0.1, source 10.0.0.2, next hop 02:00:00:00:00:01, mtu 1500".
    public var text: String {
        switch self {
        case .remoteFromFlow(let resolved):
            return "remote from tun_dst (flow), \(resolved) next hop(s) resolved"
        case .remoteFromMap(let instanceID, let entries, let resolved):
            let cache = entries.map { "\($0) map-cache entr\($0 == 1 ? "y" : "ies")" } ?? "no map-cache published yet"
            return "remote from the map-cache (instance \(instanceID)): \(cache), \(resolved) next hop(s) resolved"
        case .remote(let remote, let route):
            return "remote \(remote): " + (route?.text ?? "resolving")
        }
    }
}

extension TunnelRoute {
    /// The resolver's answer in words, e.g. "eth0, resolving 192.0.2.2".
    public var text: String {
        switch self {
        case .noRoute(let remote):
            return "no route to \(remote)"
        case .notAPort(let remote, let device, let ifindex):
            return "the route to \(remote) leaves by \(device ?? "ifindex \(ifindex)"), which is not a vswift port"
        case .noSource(let remote, let device):
            return "no source address for \(remote) on \(device)"
        case .noEthernetAddress(let device):
            return "\(device) has no Ethernet address"
        case .resolving(let device, let gateway, let nextHop):
            return "\(device)\(Self.via(gateway)), resolving \(nextHop)"
        case .resolved(let device, let gateway, let source, let mac, let mtu, let offloaded):
            let checksum = offloaded ? ", udp checksum offloaded" : ""
            // The inner packet's room (RFC 9300 §7: what a "too big" answer announces): the MTU less
            // outer IP, UDP and LISP.
            let overhead: UInt32 = source.isIPv4 ? 36 : 56
            let mtuText = mtu == 0 ? "" : ", mtu \(mtu) (inner \(mtu > overhead ? mtu - overhead : 0))"
            return "\(device)\(Self.via(gateway)), source \(source), next hop \(Self.mac(mac))\(mtuText)\(checksum)"
        }
    }

    private static func via(_ gateway: IPAddress?) -> String { gateway.map { " via \($0)" } ?? "" }

    /// e.g. "02:00:00:00:00:0a" (lower-case, two digits a byte).
    static func mac(_ mac: UInt64) -> String {
        (0..<6).map { i in
            let byte = UInt8(truncatingIfNeeded: mac >> UInt64(40 - 8 * i))
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
