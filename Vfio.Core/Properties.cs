// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;

// Every native call is a LibraryImport over blittable types; nothing relies on runtime marshalling.
[assembly: DisableRuntimeMarshalling]

// Test assemblies only; product assemblies see each other through public API alone.
[assembly: InternalsVisibleTo("Vfio.Core.Tests")]
[assembly: InternalsVisibleTo("Vfio.Benchmarks")]
// The ABI tests measure the uAPI as Vfio.Core compiles it (Common/Interop is internal in every assembly).
[assembly: InternalsVisibleTo("Vfio.Abi.Tests")]
