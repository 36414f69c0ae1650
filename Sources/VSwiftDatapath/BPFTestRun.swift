import CXDP
import Glibc

/// A BPF object file loaded with libbpf, for programs that are run rather than attached: the XDP
/// flow cache's maps and programs, and the test harnesses driven through BPF_PROG_RUN.
public final class BPFObjectFile {
    public let path: String
    let object: OpaquePointer

    /// Opens and loads `path`; each map named in `reusing` uses the given fd instead of a new map
    /// (`bpf_map__reuse_fd`: maps shared by several programs of one datapath).
    public init(path: String, reusing: [String: Int32] = [:]) throws(DatapathError) {
        self.path = path
        guard let object = bpf_object__open_file(path, nil) else {
            throw .system(SystemError("open BPF object \(path)"))
        }
        var loaded = false
        defer { if !loaded { bpf_object__close(object) } }
        for (name, fd) in reusing {
            guard let map = bpf_object__find_map_by_name(object, name) else {
                throw .unsupported("BPF object \(path) has no map \(name)")
            }
            let rc = bpf_map__reuse_fd(map, fd)
            guard rc == 0 else { throw .system(SystemError("reuse map \(name) in \(path)", negativeErrno: rc)) }
        }
        let rc = bpf_object__load(object)
        guard rc == 0 else { throw .system(SystemError("load BPF object \(path)", negativeErrno: rc)) }
        self.object = object
        loaded = true
    }

    public func programFD(_ name: String) throws(DatapathError) -> Int32 {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            throw .unsupported("BPF object \(path) has no program \(name)")
        }
        return bpf_program__fd(program)
    }

    public func mapFD(_ name: String) throws(DatapathError) -> Int32 {
        let fd = bpf_object__find_map_fd_by_name(object, name)
        guard fd >= 0 else { throw .unsupported("BPF object \(path) has no map \(name)") }
        return fd
    }

    deinit { bpf_object__close(object) }
}

/// BPF_PROG_RUN on an XDP program without live frames (the mode this kernel allows): the program
/// runs on a copy of the frame; nothing is transmitted or redirected for real.
public enum XDPTestRun {
    public struct Result: Sendable {
        /// The program's return code (XDP_DROP 1, XDP_PASS 2, XDP_TX 3, XDP_REDIRECT 4).
        public var action: UInt32
        /// The frame as the program left it (after head adjustments and rewrites).
        public var frame: [UInt8]
        /// The kernel's mean time per run, in nanoseconds.
        public var nanosecondsPerRun: UInt32
    }

    public static let drop: UInt32 = 1, pass: UInt32 = 2, tx: UInt32 = 3, redirect: UInt32 = 4

    public static func run(programFD: Int32, frame: [UInt8], repeat count: UInt32 = 1) throws(DatapathError) -> Result {
        var out = [UInt8](repeating: 0, count: frame.count + 512)
        var outSize = UInt32(out.count)
        var duration: UInt32 = 0
        let rc = frame.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                vs_xdp_prog_run(programFD, input.baseAddress, UInt32(input.count), output.baseAddress,
                                &outSize, count, &duration)
            }
        }
        guard rc >= 0 else { throw .system(SystemError("BPF_PROG_RUN", negativeErrno: rc)) }
        return Result(action: UInt32(rc), frame: Array(out[..<Int(min(outSize, UInt32(out.count)))]),
                      nanosecondsPerRun: duration)
    }
}
