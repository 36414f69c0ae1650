import CXDP
import Glibc

/// A tap device this process creates and owns, with one queue (fd) per worker.
/// Used for a bridge's internal port (OVS `LOCAL`): what the host stack sends out of the tap is read
/// from the fds, and what the switch writes to them the host stack receives. The device disappears
/// when its last fd closes, so a daemon exit never leaves it behind.
final class TapDevice {
    let name: String
    private(set) var fds: [Int32]

    init(name: String, queues: Int) throws(DatapathError) {
        guard !name.isEmpty, name.utf8.count < Int(IF_NAMESIZE) else {
            throw .unsupported("\"\(name)\" is not a valid interface name (1–15 bytes)")
        }
        guard if_nametoindex(name) == 0 else { throw .bridgeExists(name) }
        self.name = name
        self.fds = []
        for _ in 0..<max(queues, 1) {
            let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
            guard fd >= 0 else {
                closeAll()
                throw .system(SystemError("open /dev/net/tun"))
            }
            fds.append(fd)
            var rc = vs_tap_attach(fd, name, Int16(IFF_MULTI_QUEUE))
            if rc == 0 { rc = vs_set_nonblocking(fd) }
            guard rc == 0 else {
                closeAll()
                throw .system(SystemError("create tap \(name)", negativeErrno: rc))
            }
        }
        let rc = vs_if_set_up(name, 1)
        guard rc == 0 else {
            closeAll()
            throw .system(SystemError("bring up \(name)", negativeErrno: rc))
        }
    }

    var ifindex: UInt32 { if_nametoindex(name) }

    func closeAll() {
        for fd in fds { Glibc.close(fd) }
        fds = []
    }

    deinit { closeAll() }
}
