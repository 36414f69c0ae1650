import Foundation
import Glibc
import VSwiftDatapath

// Files and sockets the control-path tests make: temporary directories, a file's text, AF_UNIX
// listeners standing where the daemon's socket would be.

/// A fresh directory `/tmp/<prefix>-XXXXXX` (under /tmp, not $TMPDIR: socket paths must stay under
/// 108 bytes), with `mode` if given (mkdtemp makes it 0700). The caller removes it.
public func makeTemporaryDirectory(_ prefix: String = "vswift-test", mode: mode_t? = nil) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else { throw SystemError("mkdtemp /tmp/\(prefix)") }
    let directory = String(cString: path)
    if let mode { chmod(directory, mode) }
    return directory
}

/// The text of the file at `path`, or nil when it cannot be read.
public func fileText(_ path: String) -> String? {
    try? String(contentsOfFile: path, encoding: .utf8)
}

/// A listening AF_UNIX socket at `path`; with `uid`, listen() runs under that effective uid, so
/// the socket's peer credentials (SO_PEERCRED) name that user, as another user's listener would.
public func unixListener(_ path: String, asUID uid: uid_t? = nil) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SystemError("socket") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0 else {
        close(fd)
        throw SystemError("bind \(path)")
    }
    if let uid {
        guard seteuid(uid) == 0 else {
            close(fd)
            throw SystemError("seteuid")
        }
    }
    let listened = Glibc.listen(fd, 4)
    if uid != nil { _ = seteuid(0) }
    guard listened == 0 else {
        close(fd)
        throw SystemError("listen \(path)")
    }
    return fd
}
