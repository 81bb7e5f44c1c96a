import EquicastCore
import EquicastCrypto
import EquicastPosix

#if EQUICAST_FAULT_INJECTION
    import CEquicastShims  // getenv
#endif

/// The daemon's side of releases: the chunk store, assembling the image, and the install / health / rollback
/// hooks, each step persisted (`UpdateRecord`) before it starts so that a power cut resumes or rolls back.
extension Daemon {
    typealias Hook = ReleasePipeline.Hook

    /// Hooks other than the health check get this long before they are killed and count as failed.
    static let hookTimeout: UInt64 = 30 * 60_000

    static func releaseSettings(_ config: AgentConfig, record: UpdateRecord?) throws(AgentError) -> ReleaseSettings {
        var s = ReleaseSettings()
        for path in config.releasePublicKeyFiles {
            let bytes: [UInt8]
            do throws(PosixError) {
                bytes = try KeyFile.loadPublic(path, byteCount: Ed25519.publicKeyByteCount)
            } catch {
                throw .startup(error)
            }
            do throws(CryptoError) { s.trustedKeys.append(try Ed25519.PublicKey(bytes: bytes)) } catch {
                throw .startup(.badKeyFile(path: path, reason: error))
            }
        }
        s.product = config.product
        s.installedVersion = record?.installedVersion ?? config.firmwareVersion
        s.updateState = record?.state ?? (config.firmwareVersion > 0 ? .committed : .idle)
        s.rejectedReleases = record?.rejected ?? []
        s.storageRetryInterval = UInt64(config.storageRetryInterval) * 1000
        #if EQUICAST_FAULT_INJECTION
            // Debug builds only: the process tests make one agent a rogue peer.
            s.faultServeCorruptChunks = getenv("EQUICAST_FAULT_SERVE_CORRUPT_CHUNKS") != nil
        #endif
        return s
    }

    /// At start: the held release comes back (verified again), and an update cut short resumes.
    func restoreReleases(now: UInt64) {
        guard let store = pipeline.store else { return }
        // A partial image left by a kill or a power cut: the image is built again from the chunks that survived.
        try? FileSystem.remove(store.partialImagePath)
        guard let bytes = store.loadManifest(store.heldManifestPath) else { return }
        if let error = node.restoreRelease(bytes, now: now) {
            log.log(.warning, "the kept release manifest is refused (\(error)); removing it")
            try? FileSystem.remove(store.heldManifestPath)
            return
        }
        switch pipeline.record.state {
        case .verifying, .staged: pipeline.resumeAfterDownload = true
        case .installing:
            log.log(.warning, "the install command was interrupted (restart); running it again")
            startHook(.install, now: now)
        case .healthCheck:
            log.log(.info, "resuming the health check after a restart")
            startHook(.health, now: now)
        default: break
        }
    }

    /// Carries out one of the node's storage requests against the release store.
    func carryOut(_ request: StorageRequest, now: UInt64) {
        guard let store = pipeline.store else { return }
        switch request {
        case .openRelease(let held):
            let id = held.releaseID
            do throws(PosixError) {
                try FileSystem.writeFileAtomically(store.heldManifestPath, held.bytes, mode: 0o600)
            } catch {
                log.log(.error, "cannot keep the manifest of release \(id.shortHex): \(error)")
            }
            let present = store.present(held.manifest)
            if present.setCount > 0 {
                log.log(.info, "release \(id.shortHex): \(present.setCount) of \(present.count) chunks already stored")
            }
            node.releaseOpened(id, present: present, now: now)
            openImage(now: now)
        case .storeChunk(let release, let index, let chunk, let bytes):
            do throws(PosixError) {
                try store.store(chunk, bytes)
                if let image = pipeline.image, image.release == release {
                    do throws(PosixError) { try image.write(index, compressed: bytes, store: store) } catch {
                        dropImage(error)
                    }
                }
            } catch {
                node.chunkStoreFailed(release: release, index: index, now: now)
                if node.heldReleaseInstallable && pipeline.record.state == .downloading && node.updateState == .failed {
                    // The node stopped the download; the release stays wanted (space may be freed).
                    pipeline.updateReason =
                        "cannot store chunk \(index): \(error); the running firmware is untouched; "
                        + "trying again in \(config.storageRetryInterval) s"
                    log.log(.error, "update failed: \(pipeline.updateReason)")
                    setUpdate(.failed, now: now, rejecting: false)
                }
            }
        case .readChunk(let connection, let requester, let release, let index, let chunk, let from):
            let bytes = store.read(chunk.id, size: Int(chunk.compressedSize))
            node.serveChunk(
                connection: connection, requester: requester, release: release, index: index, from: from,
                bytes: bytes, now: now)
        case .discardChunk(let release, let index, let chunk):
            log.log(.warning, "chunk \(index) of release \(release.shortHex) read back damaged; fetching it again")
            store.discard(chunk)
        }
    }

    /// Starts building the held release's image as its chunks arrive (installable releases only); chunks
    /// already stored are written over the next loop turns. The previous partial image, if any, is removed.
    func openImage(now: UInt64) {
        closeImage()  // first: dropping it removes releases/image.partial, which the new one reuses
        guard let store = pipeline.store, let held = node.heldManifest, node.heldReleaseInstallable else { return }
        do throws(PosixError) {
            pipeline.image = try store.openImage(held.manifest, release: held.releaseID)
            pipeline.imageBusy = (node.releaseHaves?.setCount ?? 0) > 0
        } catch {
            dropImage(error)
        }
    }

    /// The image cannot be built as chunks arrive (full disk, I/O error): it is assembled from the chunk store
    /// once every chunk is here instead, which checks the space it needs first.
    func dropImage(_ error: PosixError) {
        log.log(.warning, "cannot build the image as chunks arrive (\(error)); it is assembled once all are here")
        closeImage()
    }

    /// Stops building the image; a partial one is removed.
    func closeImage() { pipeline.closeImage() }

    /// Called every loop turn: one slice of the image's work (chunks already stored, then the read-back).
    func pollImage(now: UInt64) {
        guard pipeline.imageBusy, let image = pipeline.image, let store = pipeline.store else { return }
        guard image.release == node.heldRelease?.releaseID, let stored = node.releaseHaves else {
            closeImage()
            return
        }
        do throws(PosixError) {
            pipeline.imageBusy = try image.advance(stored: stored, finishing: pipeline.imageFinishing, store: store)
        } catch {
            dropImage(error)
            if pipeline.imageFinishing { assembleImage(now: now) }
            return
        }
        guard pipeline.imageFinishing, !pipeline.imageBusy else { return }
        closeImage()  // verified: renamed to releases/image already
        if image.verified {
            imageReady(now: now)
        } else {
            log.log(.warning, "the image built as chunks arrived does not verify; assembling it from the chunk store")
            assembleImage(now: now)
        }
    }

    /// Every chunk is here: verify the image (built as they arrived, or assembled now), then install it.
    func releaseDownloaded(now: UInt64) {
        guard let held = node.heldManifest, node.heldReleaseInstallable else { return }
        setUpdate(.verifying, now: now)
        if let image = pipeline.image, image.release == held.releaseID {
            pipeline.imageFinishing = true
            pipeline.imageBusy = true
        } else {
            assembleImage(now: now)
        }
    }

    /// The diagnosing path: inflates and checks every chunk from the store in one go.
    func assembleImage(now: UInt64) {
        guard let store = pipeline.store, let held = node.heldManifest else { return }
        do throws(AssemblyError) {
            try store.assemble(held.manifest)
        } catch {
            failUpdate("the image of version \(held.manifest.version) cannot be assembled: \(error)", now: now)
            return
        }
        imageReady(now: now)
    }

    /// The image is verified and in place: staged, then installed unless installs wait.
    func imageReady(now: UInt64) {
        guard let store = pipeline.store, let held = node.heldManifest else { return }
        setUpdate(.staged, now: now)
        log.log(.info, "version \(held.manifest.version) assembled and verified at \(store.imagePath)")
        if config.installCommand.isEmpty {
            log.log(.warning, "no InstallCommand configured: version \(held.manifest.version) stays staged")
            return
        }
        if pipeline.installsDeferred {
            log.log(
                .info,
                "installs are deferred (update admin status 'defer'): version \(held.manifest.version) stays staged")
            return
        }
        startHook(.install, now: now)
    }

    func startHook(_ kind: Hook.Kind, now: UInt64) {
        guard let held = node.heldManifest, let store = pipeline.store else { return }
        let command: String
        let timeout: UInt64
        switch kind {
        case .install:
            command = config.installCommand
            timeout = Daemon.hookTimeout
            setUpdate(.installing, now: now)
        case .health:
            command = config.healthCommand
            timeout = UInt64(max(1, held.manifest.policy.healthTimeoutSeconds)) * 1000
            if command.isEmpty {
                commit(now: now)
                return
            }
            setUpdate(.healthCheck, now: now)
        case .rollback(let after):
            command = config.rollbackCommand
            timeout = Daemon.hookTimeout
            if command.isEmpty {
                setUpdate(after, now: now)
                return
            }
        }
        let environment = [
            "EQUICAST_IMAGE=\(store.imagePath)", "EQUICAST_VERSION=\(held.manifest.version)",
            "EQUICAST_RELEASE=\(held.releaseID.hex)", "EQUICAST_PRODUCT=\(held.manifest.product)",
            "EQUICAST_PREVIOUS_VERSION=\(pipeline.record.installedVersion)",
        ]
        do throws(PosixError) {
            let p = try ChildProcess(command: command, environment: environment)
            pipeline.hook = Hook(kind: kind, process: p, deadline: now + timeout)
            log.log(.info, "running \(Daemon.hookName(kind)) command (pid \(p.pid)): \(command)")
        } catch {
            hookFinished(kind, code: 127, detail: "could not start: \(error)", now: now)
        }
    }

    static func hookName(_ kind: Hook.Kind) -> String {
        switch kind {
        case .install: return "install"
        case .health: return "health"
        case .rollback: return "rollback"
        }
    }

    /// Called every loop turn: has the running hook ended or run out of time?
    func pollHook(now: UInt64) {
        if pipeline.resumeAfterDownload {
            pipeline.resumeAfterDownload = false
            releaseDownloaded(now: now)
        }
        guard let h = pipeline.hook else { return }
        if let code = h.process.poll() {
            pipeline.hook = nil
            hookFinished(h.kind, code: code, detail: "exited with status \(code)", now: now)
        } else if now >= h.deadline {
            h.process.kill()
            pipeline.hook = nil
            hookFinished(h.kind, code: 124, detail: "timed out and was killed", now: now)
        }
    }

    func hookFinished(_ kind: Hook.Kind, code: Int32, detail: String, now: UInt64) {
        let name = Daemon.hookName(kind)
        switch kind {
        case .install:
            if code == 0 {
                log.log(.info, "install command succeeded")
                startHook(.health, now: now)
            } else {
                log.log(.error, "install command \(detail): the update failed; rolling back")
                pipeline.updateReason = "install command \(detail)"
                startHook(.rollback(after: .failed), now: now)
            }
        case .health:
            if code == 0 {
                commit(now: now)
            } else {
                log.log(.error, "health command \(detail): rolling back")
                pipeline.updateReason = "health command \(detail)"
                startHook(.rollback(after: .rolledBack), now: now)
            }
        case .rollback(let after):
            if code != 0 { log.log(.error, "\(name) command \(detail)") } else { log.log(.info, "rollback done") }
            setUpdate(after, now: now)
        }
    }

    func commit(now: UInt64) {
        guard let held = node.heldManifest, let store = pipeline.store else { return }
        let previous = store.loadManifest(store.installedManifestPath).flatMap { try? SignedManifest.inspect($0) }
        pipeline.record.installedVersion = held.manifest.version
        do throws(PosixError) {
            try FileSystem.writeFileAtomically(store.installedManifestPath, held.bytes, mode: 0o600)
        } catch {
            log.log(.error, "cannot record the installed manifest: \(error)")
        }
        setUpdate(.committed, now: now)
        store.collectGarbage(installed: held.manifest, previous: previous)
        try? FileSystem.remove(store.imagePath)
        log.log(.info, "version \(held.manifest.version) installed and healthy: committed")
    }

    func failUpdate(_ why: String, now: UInt64) {
        log.log(.error, "update failed: \(why)")
        pipeline.updateReason = why
        closeImage()
        if let store = pipeline.store {
            do throws(PosixError) { try FileSystem.remove(store.imagePath) } catch {
                log.log(.warning, "cannot remove the partial image: \(error)")
            }
        }
        setUpdate(.failed, now: now)
    }

    /// Persists the new state first, then tells the node (which gossips it). A failed or rolled-back release is
    /// never fetched again, unless `rejecting` is false (a full disk: the node tries again later).
    func setUpdate(_ state: UpdateState, now: UInt64, rejecting: Bool = true) {
        pipeline.note(state, release: node.heldRelease?.releaseID, rejecting: rejecting, now: now)
        do throws(PosixError) { try pipeline.store?.save(pipeline.record) } catch {
            log.log(.error, "cannot persist the update state (\(state.name)): \(error)")
        }
        node.reportUpdate(state, installedVersion: pipeline.record.installedVersion, rejecting: rejecting, now: now)
        notifySNMP(update: state, reason: pipeline.updateReason)
    }
}
