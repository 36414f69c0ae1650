import CXDP
import Glibc

/// The sink: vswift_sink.bpf.o attached (native XDP, through a bpf_link) to k0 in the sink
/// namespace; it counts frames and bytes per CPU and drops them. Its counters are the only source of
/// the bench's rates. It also owns a raw AF_PACKET socket on k0 to send the frame that teaches the
/// switch where the sink's MAC lives.
final class Sink {
    let device: String
    let mac: [UInt8]
    private let object: LoadedBPFObject
    private let statsFD: Int32
    private var linkFD: Int32
    private var packetFD: Int32
    private let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: possibleCPUs * 2)

    init(namespace: String, device: String, objectPath: String) throws {
        self.device = device
        let setup = try Threads.run(inNamespace: namespace) { () throws -> (LoadedBPFObject, Int32, Int32, Int32, [UInt8]) in
            let object = try LoadedBPFObject(path: objectPath)
            let program = try object.programFD("vswift_sink")
            let stats = try object.mapFD("vsb_sink_stats")
            let (ifindex, mac) = try deviceIdentity(device, namespace: namespace)
            let link = vs_xdp_link_create(program, Int32(ifindex), UInt32(XDP_FLAGS_DRV_MODE))
            guard link >= 0 else { throw BenchError.failed("attach the sink to \(device) (native XDP): \(errnoText(-link))") }
            let fd = PacketSocket.open(ifindex: ifindex)
            guard fd >= 0 else {
                Glibc.close(link)
                throw BenchError.failed("AF_PACKET socket on \(device): \(errnoText())")
            }
            return (object, stats, link, fd, mac)
        }
        (object, statsFD, linkFD, packetFD, mac) = setup
    }

    /// Sends one broadcast frame from the sink's MAC (ethertype 0x88b5, IEEE local experimental), so
    /// a learning switch learns that the sink's MAC is behind its port toward k0.
    func sendLearningFrame() throws(BenchError) {
        var frame = [UInt8](repeating: 0, count: 60)
        for i in 0..<6 { frame[i] = 0xff }
        frame.replaceSubrange(6..<12, with: mac)
        frame[12] = 0x88; frame[13] = 0xb5
        let sent = send(packetFD, frame, frame.count, 0)
        guard sent == frame.count else { throw .failed("send learning frame on \(device): \(errnoText())") }
    }

    /// Frames and bytes the sink has counted (all CPUs). Does not allocate beyond the result.
    func counters() -> (packets: UInt64, bytes: UInt64) {
        let sums = sumPerCPU(mapFD: statsFD, key: 0, fields: 2, buffer: buffer)
        return (sums[0], sums[1])
    }

    func close() {
        if linkFD >= 0 { Glibc.close(linkFD); linkFD = -1 }
        if packetFD >= 0 { Glibc.close(packetFD); packetFD = -1 }
    }

    deinit {
        close()
        buffer.deallocate()
    }
}
