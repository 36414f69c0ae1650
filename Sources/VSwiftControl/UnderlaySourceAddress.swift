import Glibc
import VSwiftPacket

/// The host's address the kernel would send from toward a destination: a UDP socket `connect`ed
/// to it (which sends nothing, only routes) and `getsockname`. A local EID configured without
/// RLOCs is registered with these addresses toward the map-servers (the issue's "by default the
/// host's address the underlay route uses"); the LISP control thread asks again every 30 s and on
/// every configuration change, so a host whose address changes registers the new one.
enum UnderlaySourceAddress {
    /// nil when there is no route (or the kernel refuses for another reason).
    static func toward(_ destination: IPAddress, port: UInt16 = 4342) -> IPAddress? {
        let family = destination.isIPv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if destination.isIPv4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = destination.ipv4.bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { return nil }
            var local = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0, local.sin_addr.s_addr != 0 else { return nil }
            return IPAddress(ipv4: UInt32(bigEndian: local.sin_addr.s_addr))
        }
        var address = LISPControlSocket.socketAddress(destination, port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard connected == 0 else { return nil }
        var local = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        let source = withUnsafeBytes(of: local.sin6_addr) { IPAddress(loadingFrom: $0.baseAddress!) }
        return source.high == 0 && source.low == 0 ? nil : source
    }
}
