import CXDP
import Glibc

/// A loaded BPF object file (libbpf), closed with the object.
final class LoadedBPFObject {
    let path: String
    private let object: OpaquePointer

    init(path: String) throws(BenchError) {
        self.path = path
        guard let object = bpf_object__open_file(path, nil) else {
            throw .failed("open BPF object \(path): \(errnoText())")
        }
        let rc = bpf_object__load(object)
        guard rc == 0 else {
            bpf_object__close(object)
            throw .failed("load BPF object \(path): \(errnoText(-rc))")
        }
        self.object = object
    }

    func programFD(_ name: String) throws(BenchError) -> Int32 {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            throw .failed("\(path) has no program \(name)")
        }
        return bpf_program__fd(program)
    }

    func mapFD(_ name: String) throws(BenchError) -> Int32 {
        let fd = bpf_object__find_map_fd_by_name(object, name)
        guard fd >= 0 else { throw .failed("\(path) has no map \(name)") }
        return fd
    }

    deinit { bpf_object__close(object) }
}

/// Number of possible CPUs: the length of a per-CPU map value array.
let possibleCPUs = max(Int(libbpf_num_possible_cpus()), 1)

/// Sums entry `key` of a PERCPU_ARRAY map whose values are `fields` u64 words; returns the sums per word.
/// `buffer` must hold possibleCPUs * fields words (allocated once, so reads do not allocate).
func sumPerCPU(mapFD: Int32, key: UInt32, fields: Int, buffer: UnsafeMutablePointer<UInt64>) -> [UInt64] {
    var k = key
    var sums = [UInt64](repeating: 0, count: fields)
    guard bpf_map_lookup_elem(mapFD, &k, buffer) == 0 else { return sums }
    for cpu in 0..<possibleCPUs {
        for f in 0..<fields { sums[f] &+= buffer[cpu * fields + f] }
    }
    return sums
}

/// Where the bench finds its BPF objects and the baseline: `--bpf-dir`, `$VSWIFT_BPF_DIR`, next
/// to the executable (scripts/build.sh copies them there), then `.build/bpf`.
enum Artifacts {
    static let redirect = "vswift_redirect.bpf.o"
    static let trafficgen = "vswift_trafficgen.bpf.o"
    static let sink = "vswift_sink.bpf.o"

    static func bpfDirectory(explicit: String?) throws(BenchError) -> String {
        var candidates: [String] = []
        if let explicit { candidates.append(explicit) }
        if let env = getenv("VSWIFT_BPF_DIR") { candidates.append(String(cString: env)) }
        candidates += [executableDirectory(), ".build/bpf"]
        for dir in candidates where [redirect, trafficgen, sink].allSatisfy({ access("\(dir)/\($0)", R_OK) == 0 }) {
            return dir
        }
        throw .failed("cannot find \(redirect), \(trafficgen) and \(sink) in \(candidates.joined(separator: ", ")): run scripts/build.sh (or scripts/build-bpf.sh), or pass --bpf-dir")
    }
}
