import Glibc
import SystemPackage

// swift-system retries its own calls on EINTR (`retryOnInterrupt`) but has no public form for the
// calls it does not wrap (fsync, rename, send(2) with flags, ...): this is that form, for the
// client and the control path alike.

/// Makes `call` until it is not interrupted; throws its `errno` when it fails (returns -1).
@discardableResult
package func retryingOnInterrupt<Result: FixedWidthInteger>(_ call: () -> Result) throws(Errno) -> Result {
    while true {
        let result = call()
        if result != -1 { return result }
        let error = Errno(rawValue: errno)
        guard error == .interrupted else { throw error }
    }
}
