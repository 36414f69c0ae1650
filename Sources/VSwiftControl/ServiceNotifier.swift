import Glibc
import SystemPackage

/// systemd's service notification protocol (sd_notify(3)), without libsystemd: one datagram of
/// newline-separated `KEY=VALUE` assignments to the AF_UNIX socket named by `$NOTIFY_SOCKET`.
/// vswiftd sends `READY=1` once its control socket has answered a request (so `systemctl start`
/// returns when `vswiftctl` works; unit `Type=notify`) and `STOPPING=1` when it starts shutting down.
///
/// `$NOTIFY_SOCKET` is a file system path (`/run/systemd/notify`) or, with a leading `@`, a name
/// in the abstract namespace (sd_notify(3), "NOTES"). systemd's `vsock:` addresses are not
/// supported (vswiftd does not run in a VM's guest manager): such a value means no notifier.
public struct ServiceNotifier: Sendable {
    /// The address as given in `$NOTIFY_SOCKET`.
    public let address: String

    /// nil when `$NOTIFY_SOCKET` is unset, empty, or not a path or abstract name: not started by
    /// a service manager that listens, so there is nobody to tell.
    public init?(environment: [String: String]) {
        guard let address = environment["NOTIFY_SOCKET"], address.hasPrefix("/") || address.hasPrefix("@"),
            address.utf8.count >= 2
        else { return nil }
        self.address = address
    }

    /// Sends `assignments` (e.g. `["READY=1", "STATUS=…"]`) in one datagram.
    public func notify(_ assignments: [String]) throws(Errno) {
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(address.utf8)
        // An abstract name starts with a NUL byte instead of "@" and is not NUL-terminated.
        if pathBytes[0] == UInt8(ascii: "@") { pathBytes[0] = 0 }
        guard pathBytes.count < MemoryLayout.size(ofValue: target.sun_path) else { throw .fileNameTooLong }
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: pathBytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count)

        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        let message = Array(assignments.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                message.withUnsafeBytes { bytes in
                    var result: Int
                    repeat {
                        result = sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), address, length)
                    } while result < 0 && errno == EINTR
                    return result
                }
            }
        }
        guard sent >= 0 else { throw Errno(rawValue: errno) }
        // A datagram is sent whole or not at all.
        guard sent == message.count else { throw .messageTooLong }
    }
}
