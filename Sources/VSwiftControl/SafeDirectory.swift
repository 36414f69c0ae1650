import Glibc
import SystemPackage

/// The trust boundary of vswiftd's files (the configuration, its temporary file and journal) and
/// its control socket: a directory they live in must be one that only root, or the user vswiftd
/// runs as, can change. Anyone else who may create or rename names there could plant a symlink
/// where vswiftd writes (and have root truncate any file) or put their own socket in place of
/// vswiftd's. A sticky directory such as /tmp is allowed, since others cannot rename or delete
/// names they do not own there, as long as the names vswiftd uses are its own (or absent).
public enum SafeDirectory {
    /// Refuses `directory` when it is not a directory, is owned by someone other than root or the
    /// effective user, or is group- or world-writable without the sticky bit; then refuses any of
    /// `files` (names in it) that exists and is not of `type` (`.regular`, `.socket`), not
    /// owned by the effective user, or has other hard links. A missing directory is fine: it is
    /// created (by vswiftd, mode 0755) when first needed.
    public static func check(_ directory: String, files: [(name: String, type: FileType)]) throws(SafePathError) {
        let status: Stat
        do throws(Errno) {
            // The directory itself may be reached through a symlink (/var/run -> /run): what counts
            // is who can change the directory it names.
            status = try FilePath(directory.isEmpty ? "." : directory).stat()
        } catch {
            if error == .noSuchFileOrDirectory { return }
            throw SafePathError(path: directory, problem: "cannot inspect: \(error)")
        }
        guard status.type == .directory else { throw SafePathError(path: directory, problem: "is not a directory") }
        let me = geteuid()
        let owner = status.userID.rawValue
        guard owner == 0 || owner == me else {
            throw SafePathError(path: directory, problem: "is owned by uid \(owner), not by root or uid \(me): that user could redirect vswiftd's files")
        }
        let othersMayWrite = !status.permissions.isDisjoint(with: [.groupWrite, .otherWrite])
        guard !othersMayWrite || status.permissions.contains(.saveText) else {  // saveText: the sticky bit
            throw SafePathError(path: directory, problem: "is writable by group or others and not sticky: they could redirect vswiftd's files (chmod go-w or use another directory)")
        }
        for file in files {
            try checkFile(directory.isEmpty ? file.name : directory + "/" + file.name, type: file.type)
        }
    }

    /// Refuses `path` when it exists and is not a `type` owned by the effective user with a single
    /// link (a symlink is refused: like `lstat`, the status is the link's own).
    public static func checkFile(_ path: String, type: FileType) throws(SafePathError) {
        let status: Stat
        do throws(Errno) {
            status = try FilePath(path).stat(followTargetSymlink: false)
        } catch {
            if error == .noSuchFileOrDirectory { return }
            throw SafePathError(path: path, problem: "cannot inspect: \(error)")
        }
        try check(status, path: path, type: type)
    }

    /// The test of `checkFile` on an already opened file's status (`fstat`).
    static func check(_ status: Stat, path: String, type: FileType) throws(SafePathError) {
        guard status.type == type else {
            let wanted = type == .socket ? "a socket" : "a regular file"
            throw SafePathError(path: path, problem: "is not \(wanted) (a symlink or something else was put there); remove it")
        }
        guard status.userID.rawValue == geteuid() else {
            throw SafePathError(path: path, problem: "belongs to uid \(status.userID.rawValue), not to vswiftd (uid \(geteuid())); remove it")
        }
        guard type == .socket || status.linkCount == 1 else {
            throw SafePathError(path: path, problem: "has \(status.linkCount) hard links; remove it")
        }
    }

    /// The check for a control socket at `path` (its directory, and a socket of ours if any).
    public static func checkSocket(_ path: String) throws(SafePathError) {
        try check(directory(of: path), files: [(name(of: path), .socket)])
    }

    /// The check for a regular file vswiftd writes at `path` (e.g. the pid file).
    public static func checkRegularFile(_ path: String) throws(SafePathError) {
        try check(directory(of: path), files: [(name(of: path), .regular)])
    }

    /// The directory part of `path` ("" for a bare name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The last component of `path`.
    static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

public struct SafePathError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String { "\(path): \(problem)" }
}
