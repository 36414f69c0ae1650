import VSwiftClassifier
import VSwiftPacket

/// What a cache entry needs to know of a port its frames arrive on or leave by.
public struct CachePort: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A device driven through AF_XDP: XDP can redirect to it (a devmap entry).
        case device
        /// The bridge's own tap (LOCAL, `internal`): frames go through a worker's write(2).
        case `internal`
        /// A LISP port: output encapsulates.
        case lisp(LISP)
        /// No such port: output to it does nothing (the datapath compiles it away).
        case absent
    }

    /// A LISP port's settings that decide whether XDP can encapsulate for it.
    public struct LISP: Sendable, Equatable {
        /// `remote_ip` is an address (not `flow`, which needs tun_dst per packet and, once the
        /// map-cache is wired, a map-cache lookup per packet).
        public var fixedRemote: Bool
        /// `key=flow`: the instance id comes from tun_id.
        public var keyFromFlow: Bool
        /// The route to the remote leaves straight out of an attached device with a resolved next
        /// hop (not through a bridge's internal port, where the packet re-enters a bridge).
        public var directEgress: Bool
        /// The XDP programs decapsulate the port's packets (it has a decap entry: a fixed remote
        /// and key, heard on an underlay device, no capture on either): frames arriving on it can
        /// hit, so it may be an entry's input.
        public var decapInXDP: Bool

        public init(fixedRemote: Bool, keyFromFlow: Bool, directEgress: Bool, decapInXDP: Bool = false) {
            self.fixedRemote = fixedRemote
            self.keyFromFlow = keyFromFlow
            self.directEgress = directEgress
            self.decapInXDP = decapInXDP
        }
    }

    public var kind: Kind
    /// A capture is running on the port (`vswiftctl capture`): it must see every frame, which only
    /// the worker's path gives it.
    public var capturing: Bool
    /// A device XDP_REDIRECT can send to now (the kernel's NETDEV_XDP_ACT_NDO_XMIT; a veth only
    /// while its peer runs NAPI): an output to a device without it stays on the workers' path.
    public var redirectTarget: Bool

    public init(kind: Kind, capturing: Bool = false, redirectTarget: Bool = true) {
        self.kind = kind
        self.capturing = capturing
        self.redirectTarget = redirectTarget
    }
}

/// Why a flow's frames must stay on the workers' path.
public enum NotCacheable: String, Sendable, Equatable, CaseIterable {
    /// NORMAL learns the source of every frame and looks the destination up in a table that
    /// changes per packet (see DESIGN.md, "Megaflows and revalidation").
    case normal
    /// FLOOD / ALL: one copy per port; XDP redirects to one.
    case flood
    /// More than one output: XDP redirects a frame once, it cannot copy it.
    case multipleOutputs
    /// Output to the bridge's internal (tap) port: a write(2) from a worker.
    case internalPort
    /// Output to a LISP port whose remote comes from the flow (tun_dst) or the map-cache.
    case lispRemoteFromFlow
    /// Output to a LISP port whose route goes through a bridge (the packet re-enters a bridge).
    case lispIndirectEgress
    /// LISP encapsulation drops non-IP frames (counted by the worker on the port).
    case lispNonIP
    /// dec_ttl reaches zero: the frame dies on the worker's path, which counts it.
    case decTTLExpires
    /// A header action the XDP program does not implement (IPv6 addresses and label, ARP fields).
    case unsupportedAction
    /// A capture runs on the input port or an output port.
    case capture
    /// The input port is not a device (a tap read, a LISP port XDP does not decapsulate for):
    /// only frames XDP sees can hit.
    case inputNotDevice
    /// Output to a device the kernel cannot redirect to now (a veth whose peer runs no NAPI).
    case redirectUnsupported
}

/// Which flows an XDP cache entry may carry: a pure function of the rule's actions, the ports'
/// kinds and the bits of the key the megaflow keeps. Cacheable: drop (no actions), at most one
/// output to an AF_XDP device or to a LISP port with a fixed remote and a direct egress (IPv4 or
/// IPv6 outer: the XDP program computes the IPv6 outer UDP checksum over the whole packet, as
/// `LISP.encapsulate` does; frames over the egress MTU are left to the workers per packet),
/// set_field / mod_* of the MACs, IPv4 addresses, DSCP, ECN, TTL, L4 ports, VLAN push / pop /
/// VID / PCP, dec_ttl that does not expire, and tunnel metadata (for LISP). Everything else
/// (`NotCacheable`) stays on the workers' path.
public enum XDPCacheability {
    public enum Verdict: Sendable, Equatable {
        /// Cacheable, once `extraMask` (bits the actions read: nw_ttl for dec_ttl, tun_id for a
        /// `key=flow` LISP output) is added to the megaflow's mask.
        case cacheable(extraMask: FlowKey)
        case notCacheable(NotCacheable)
    }

    /// The verdict for `actions` run on frames with key `key` (only the bits of `mask`, the
    /// megaflow's, or of the returned extra mask may be read: they are all the entry keeps).
    public static func verdict(actions: [FlowAction], key: FlowKey, port: (UInt32) -> CachePort) -> Verdict {
        let inPort = UInt32(truncatingIfNeeded: key.get(.inPort))
        let input = port(inPort)
        switch input.kind {
        case .device: break
        // Decapsulated in XDP (bpf/vswift_decap.h): the inner frame is looked up as arriving on
        // the LISP port, so its entries have in_port = the port.
        case .lisp(let lisp) where lisp.decapInXDP: break
        default: return .notCacheable(.inputNotDevice)
        }
        if input.capturing { return .notCacheable(.capture) }
        let dlType = key.get(.dlType)
        let isIP = dlType == UInt64(EtherType.ipv4) || dlType == UInt64(EtherType.ipv6)
        var extra = FlowKey()
        /// The TTL as the actions so far left it: nil while it is still the frame's own.
        var ttl: UInt64? = nil
        var tunnelIDSet = false
        var outputs = 0
        for action in actions {
            switch action {
            case .normal: return .notCacheable(.normal)
            case .flood, .all: return .notCacheable(.flood)
            case .output, .local, .inPort:
                let number: UInt32
                switch action {
                case .output(let n): number = n
                case .local: number = OpenFlowPort.local
                default: number = inPort  // in_port is in every megaflow's mask
                }
                // Reserved numbers other than LOCAL written as output:N (CONTROLLER, TABLE, …).
                if number >= OpenFlowPort.max && number != OpenFlowPort.local { return .notCacheable(.unsupportedAction) }
                let out = port(number)
                if out.kind == .absent { continue }  // compiled away: no output
                outputs += 1
                if outputs > 1 { return .notCacheable(.multipleOutputs) }
                if out.capturing { return .notCacheable(.capture) }
                switch out.kind {
                case .device: if !out.redirectTarget { return .notCacheable(.redirectUnsupported) }
                case .absent: break
                case .internal: return .notCacheable(.internalPort)
                case .lisp(let lisp):
                    if !lisp.fixedRemote { return .notCacheable(.lispRemoteFromFlow) }
                    if !lisp.directEgress { return .notCacheable(.lispIndirectEgress) }
                    if !isIP { return .notCacheable(.lispNonIP) }
                    if lisp.keyFromFlow && !tunnelIDSet { extra.set(.tunId, FlowField.tunId.layout.valueMask) }
                }
            case .modDlSrc, .modDlDst, .modNwSrc, .modNwDst, .modNwTos, .modNwEcn, .modTpSrc, .modTpDst,
                 .modVlanVid, .modVlanPcp, .stripVlan, .pushVlan:
                continue
            case .decTTL:
                guard isIP else { continue }  // not applicable: the frame goes on unchanged
                let current: UInt64
                if let known = ttl {
                    current = known
                } else {
                    extra.set(.nwTTL, FlowField.nwTTL.layout.valueMask)
                    current = key.get(.nwTTL)
                }
                if current <= 1 { return .notCacheable(.decTTLExpires) }
                ttl = current - 1
            case .setTunnel:
                tunnelIDSet = true
            case .setField(let field, let value):
                switch field {
                case .dlSrc, .dlDst, .nwSrc, .nwDst, .nwTos, .tpSrc, .tpDst, .vlanTCI, .tunSrc, .tunDst: continue
                case .tunId: tunnelIDSet = true
                case .nwTTL: if isIP { ttl = value & 0xff }
                default: return .notCacheable(.unsupportedAction)
                }
            case .setSharedField(let field, _):
                switch field {
                case .ipDscp, .nwEcn: continue
                case .arpOp, .arpSpa, .arpTpa: return .notCacheable(.unsupportedAction)
                }
            case .setIPv6Src, .setIPv6Dst:
                return .notCacheable(.unsupportedAction)
            }
        }
        return .cacheable(extraMask: extra)
    }
}
