import Glibc

/// A plain pthread running `body` (workers, the tunnel resolver): these threads must not come from
/// a pool, since a worker is pinned to a CPU and each lives as long as the datapath. Join it with
/// `pthread_join`.
func startThread(_ body: @escaping () -> Void) -> pthread_t {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body))
    var tid = pthread_t()
    let rc = pthread_create(&tid, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box.toOpaque())
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return tid
}

/// Adds one to an eventfd, waking whoever polls it.
func signalEventFD(_ fd: Int32) {
    var one: UInt64 = 1
    _ = write(fd, &one, 8)
}
