// vswiftd's `--xdp-cache auto` (the default): the cache is on when its maps can be created at
// their real sizes and the redirect program loads (through the verifier) with them, off with the
// reason otherwise. `--xdp-cache on` refuses to start when this fails.

extension Datapath {
    /// nil when the XDP flow cache works on this machine; otherwise why not. Creates the maps
    /// (as `Datapath.init` does with `xdpFlowCache`) and loads one redirect program with them,
    /// attached nowhere; both are released before returning.
    public static func xdpFlowCacheProblem(bpfDirectory: String? = nil) -> String? {
        guard let object = BPFObjects.locate(BPFObjects.redirect, directory: bpfDirectory) else {
            return "cannot find \(BPFObjects.redirect)"
        }
        do throws(DatapathError) {
            let cache = try XDPFlowCache(portSlots: DatapathLimits.maxPorts)
            _ = try XDPFlowCacheProgram(objectPath: object, cache: cache, inPort: XDPFlowCacheTranslation.inPortID(0))
            return nil
        } catch {
            return "\(error)"
        }
    }
}
