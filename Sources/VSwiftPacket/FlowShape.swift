/// The bits of a flow key that say how its frame was parsed: which headers are present, where they
/// start and which fields are filled (`FlowExtractor`'s branches). A flow cache entry (a megaflow)
/// always keeps them, whatever the rules look at, so it never covers two frames that parse
/// differently: the actions it carries (a checksum update at an L4 offset, a VLAN pop) are then
/// right for every frame it matches.
///
/// Self-consistent: the mask of a key depends only on bits the mask itself keeps (dl_type decides
/// whether nw_proto and nw_frag are kept, and dl_type is kept), so every key k' with
/// k' & mask(k) == k & mask(k) has mask(k') == mask(k). That is what keeps two megaflows of one
/// table version from overlapping.
///
/// What the key cannot say (the cache's extraction must treat these frames as misses, or parse
/// exactly as `FlowExtractor` does): an IPv6 extension header chain (the key holds only the final
/// protocol), a truncated L4 header or an invalid IP header (fields left zero, indistinguishable
/// from zero values), and a frame's length.
public enum FlowShape {
    /// Every bit `mask(of:)` keeps for some key (nw_proto and nw_frag whatever the dl_type): a
    /// key that agrees with another on these has the same shape mask and the same shape. What a
    /// worker's exact-match cache adds to its key when the XDP flow cache is on.
    public static let anyShapeMask: FlowKey = {
        var mask = FlowKey()
        mask.set(.inPort, FlowField.inPort.layout.valueMask)
        mask.set(.dlType, FlowField.dlType.layout.valueMask)
        mask.set(.vlanTCI, FlowConstants.vlanPresent)
        mask.set(.vlanOuterTCI, FlowConstants.vlanPresent)
        mask.set(.nwProto, FlowField.nwProto.layout.valueMask)
        mask.set(.nwFrag, FlowField.nwFrag.layout.valueMask)
        return mask
    }()

    /// in_port, dl_type, the present bits of both VLAN tags and, for IPv4 and IPv6, nw_proto and
    /// nw_frag (a later fragment has no L4).
    public static func mask(of key: FlowKey) -> FlowKey {
        var mask = FlowKey()
        mask.set(.inPort, FlowField.inPort.layout.valueMask)
        mask.set(.dlType, FlowField.dlType.layout.valueMask)
        mask.set(.vlanTCI, FlowConstants.vlanPresent)
        mask.set(.vlanOuterTCI, FlowConstants.vlanPresent)
        let dlType = key.get(.dlType)
        if dlType == UInt64(EtherType.ipv4) || dlType == UInt64(EtherType.ipv6) {
            mask.set(.nwProto, FlowField.nwProto.layout.valueMask)
            mask.set(.nwFrag, FlowField.nwFrag.layout.valueMask)
        }
        return mask
    }
}
