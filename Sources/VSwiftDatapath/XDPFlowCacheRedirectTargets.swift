import VSwiftFlowCache

/// What the installer makes of a bridge's ports as the datapath offers them, given which devices
/// XDP_REDIRECT cannot send to now (DESIGN.md, "Megaflows and revalidation", *Redirect targets*).
/// Pure, so the installer recomputes it from the offered ports whenever a device's capability
/// changes, without asking the datapath again.
enum XDPFlowCacheRedirectTargets {
    /// `offered` with: a device port that is not a redirect target marked so (inputs from it are
    /// still cached, outputs to it are not); a LISP port whose encapsulated frames would leave by
    /// such a device without direct egress (no template, no output slot: its flows stay on the
    /// workers, which send through the kernel's normal transmit path). `problems`: why a device
    /// (by slot) cannot be redirected to; absent when it can.
    static func effective(_ offered: [UInt32: XDPCachePortInfo], problems: [PortSlot: String]) -> [UInt32: XDPCachePortInfo] {
        guard !problems.isEmpty else { return offered }
        var ports = offered
        for (number, info) in offered {
            if problems[info.slot] != nil { ports[number]!.cache.redirectTarget = false }
            if let egress = info.lisp?.egress, problems[egress] != nil, case .lisp(var lisp) = info.cache.kind {
                lisp.directEgress = false
                ports[number]!.cache.kind = .lisp(lisp)
                ports[number]!.lisp = nil
            }
        }
        return ports
    }
}
