import VSwiftPacket

/// An inner destination a worker could not send: no map-cache entry covers it, or its entry says
/// "ask again" (no usable locator, negative `send-map-request`). Workers hand misses to the LISP
/// control plane through a bounded queue (a full queue drops the miss and counts it); the control
/// plane rate-limits them per prefix (`MapRequestLimiter`) and sends Map-Requests.
public struct MapCacheMiss: Hashable, Sendable {
    /// The LISP port's instance id (24 bits).
    public var instanceID: UInt32
    /// The inner packet's destination: the EID to look up.
    public var destination: IPAddress
    /// The inner packet's source: a Map-Request's source EID (RFC 9301 §5.3).
    public var source: IPAddress

    public init(instanceID: UInt32, destination: IPAddress, source: IPAddress) {
        self.instanceID = instanceID
        self.destination = destination
        self.source = source
    }
}
