import Foundation
import Glibc
import Logging
import SystemPackage
import VSwiftDatapath
import VSwiftProtocol

/// The control socket's name in the file system: where it may be bound, and which file vswiftd may
/// remove. Its directory must pass `SafeDirectory` (else another user could rename vswiftd's
/// socket and listen in its place); vswiftd removes only a socket of its own, and at exit only the
/// very socket it bound (same device and inode), never one someone else put there since.
enum ControlSocketFile {
    /// Which file a socket is.
    struct Identity: Equatable {
        var device: UInt64
        var inode: UInt64

        init(_ status: Stat) {
            device = UInt64(status.deviceID.rawValue)
            inode = UInt64(status.inode.rawValue)
        }
    }

    /// Checks the directory (creating it 0755 when missing) and what is at `path`: nothing, or a
    /// socket of vswiftd's user that nobody listens on any more (a daemon died), which is removed.
    static func prepare(_ path: String, logger: Logger) throws {
        let directory = SafeDirectory.directory(of: path)
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        // Not there, or not reachable (the directory check below then names the problem).
        let existing = try? FilePath(path).stat(followTargetSymlink: false)
        let exists = existing != nil
        guard existing.map({ $0.type == .socket }) ?? true else { throw ControlServerError.notASocket(path: path) }
        try SafeDirectory.check(directory, files: [(SafeDirectory.name(of: path), .socket)])
        guard exists else { return }
        let connectError: SocketError?
        do throws(SocketError) {
            _ = try UnixSocket(connectingTo: path, timeout: .seconds(1))
            connectError = nil
        } catch {
            connectError = error
        }
        guard let connectError else { throw ControlServerError.alreadyRunning(path: path) }
        guard connectError.errno.rawValue == ECONNREFUSED else {
            throw ControlServerError.cannotCheck(path: path, error: SystemError(connectError.operation, errno: connectError.errno.rawValue))
        }
        // Nobody listens: a daemon died without removing its socket.
        logger.info("removing stale control socket", metadata: ["path": "\(path)"])
        do throws(Errno) {
            try FilePath(path).unlink()
        } catch {
            throw SystemError("unlink \(path)", errno: error.rawValue)
        }
    }

    /// Creates a listening socket bound at `path` (call with umask 077, so the file is 0600 from the
    /// start). The file must then be the socket just made (ours, not replaced in between); it is
    /// made 0600, as only root (the daemon's user) may drive the switch. Returns the socket and
    /// the file's identity for `remove`.
    static func bind(_ path: String) throws -> (fd: Int32, identity: Identity) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("bind \(path)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let error = SystemError("bind \(path)")
            close(fd)
            throw error
        }
        do {
            let status: Stat
            do throws(Errno) {
                status = try FilePath(path).stat(followTargetSymlink: false)
            } catch {
                throw SystemError("stat \(path)", errno: error.rawValue)
            }
            try SafeDirectory.check(status, path: path, type: .socket)
            let identity = Identity(status)
            do {
                // The socket was created under umask 077 already; this makes sure of it.
                do throws(Errno) {
                    try FilePath(path).setPermissions(.ownerReadWrite)
                } catch {
                    throw SystemError("chmod \(path)", errno: error.rawValue)
                }
                guard listen(fd, 128) == 0 else { throw SystemError("listen \(path)") }
            } catch {
                remove(path, ifStill: identity)
                throw error
            }
            return (fd, identity)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Removes `path` only if it is still the socket `bound` (someone may have put another there).
    static func remove(_ path: String, ifStill bound: Identity) {
        guard let status = try? FilePath(path).stat(followTargetSymlink: false), status.type == .socket,
            Identity(status) == bound
        else { return }
        try? FilePath(path).unlink()
    }
}
