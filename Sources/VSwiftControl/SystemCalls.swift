import Glibc
import SystemPackage
import VSwiftProtocol

// The calls of the control path's file handling that swift-system (1.x) does not wrap — fsync,
// fdatasync, rename, unlink, chmod — in its terms: the error is an `Errno`, and an interrupted
// call (EINTR) is made again, as swift-system's own calls do by default.

extension FileDescriptor {
    /// fsync(2): the file's data and metadata are on disk.
    func sync() throws(Errno) {
        try retryingOnInterrupt { fsync(rawValue) }
    }

    /// fdatasync(2): the file's data (and the metadata needed to read it back) are on disk.
    func syncData() throws(Errno) {
        try retryingOnInterrupt { fdatasync(rawValue) }
    }
}

extension FilePath {
    /// unlink(2): removes the name (a symlink itself, never its target).
    public func unlink() throws(Errno) {
        try retryingOnInterrupt { Glibc.unlink(string) }
    }

    /// rename(2), atomically replacing `target`.
    func rename(to target: FilePath) throws(Errno) {
        try retryingOnInterrupt { Glibc.rename(string, target.string) }
    }

    /// chmod(2).
    func setPermissions(_ permissions: FilePermissions) throws(Errno) {
        try retryingOnInterrupt { chmod(string, permissions.rawValue) }
    }
}
