// A LISP port's refusals by reason, as one list: the metrics endpoint iterates over it, so a new
// reason counted by the datapath is one line here (besides its field), under the name `dump-ports`
// prints it with.

extension TunnelStatisticsReport {
    /// Packets dropped, by reason (the names of `dump-ports`' `lisp … drop` list).
    public static var dropReasons: [(reason: String, counter: KeyPath<TunnelStatisticsReport, UInt64>)] {
        [
            ("non_ip", \.droppedNonIP),
            ("bad_header", \.droppedBadHeader),
            ("unknown_rloc", \.droppedUnknownRLOC),
            ("iid_mismatch", \.droppedIIDMismatch),
            ("bad_inner_length", \.droppedBadInnerLength),
            ("encrypted", \.droppedEncrypted),
            ("ce_not_ect", \.droppedCENotECT),
            ("ttl_expired", \.droppedTTLExpired),
            ("no_route", \.droppedNoRoute),
            ("no_neighbour", \.droppedNoNeighbour),
            ("too_big", \.droppedTooBig),
            ("map_miss", \.droppedMapMiss),
            ("map_drop", \.droppedMapDrop),
            ("map_native", \.droppedMapNative),
        ]
    }

    /// LISP packets not decapsulated but forwarded as the ordinary frames they are, by reason
    /// (`dump-ports`' `not_decapsulated` list): not drops.
    public static var notDecapsulatedReasons: [(reason: String, counter: KeyPath<TunnelStatisticsReport, UInt64>)] {
        [
            ("off_underlay", \.refusedOffUnderlay)
        ]
    }
}
