// SPDX-License-Identifier: MIT
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.InteropServices;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>
/// Measures the layout the runtime really gives a value type: sizes with the IL <c>sizeof</c> instruction, field
/// offsets by taking the address of the field (<c>ldflda</c>) and subtracting the address of the instance, and
/// alignment as the offset of a <typeparamref name="T"/> placed after one byte. Declared attributes
/// (<see cref="FieldOffsetAttribute"/>, <see cref="StructLayoutAttribute"/>) are never read.
/// </summary>
/// <remarks>
/// <see cref="Marshal.OffsetOf(Type, string)"/> is not used as the source of truth: it reports the marshalling
/// layout, which is a separate computation from the layout the JIT uses for the blittable structs that are
/// passed to ioctl by pointer.
/// </remarks>
internal static class ManagedLayout
{
    public static int SizeOf(Type type)
    {
        var method = new DynamicMethod($"SizeOf_{type.Name}", typeof(int), Type.EmptyTypes, typeof(ManagedLayout).Module, skipVisibility: true);
        var il = method.GetILGenerator();
        il.Emit(OpCodes.Sizeof, type);
        il.Emit(OpCodes.Ret);
        return ((Func<int>)method.CreateDelegate(typeof(Func<int>)))();
    }

    public static int OffsetOf(FieldInfo field)
    {
        var type = field.DeclaringType!;
        var method = new DynamicMethod($"OffsetOf_{type.Name}_{field.Name}", typeof(nint), Type.EmptyTypes, typeof(ManagedLayout).Module, skipVisibility: true);
        var il = method.GetILGenerator();
        il.DeclareLocal(type);
        il.Emit(OpCodes.Ldloca_S, (byte)0);
        il.Emit(OpCodes.Ldflda, field);
        il.Emit(OpCodes.Conv_U);
        il.Emit(OpCodes.Ldloca_S, (byte)0);
        il.Emit(OpCodes.Conv_U);
        il.Emit(OpCodes.Sub);
        il.Emit(OpCodes.Ret);
        return checked((int)((Func<nint>)method.CreateDelegate(typeof(Func<nint>)))());
    }

    public static int AlignOf(Type type)
    {
        var probe = typeof(AlignProbe<>).MakeGenericType(type);
        return OffsetOf(probe.GetField(nameof(AlignProbe<byte>.Value))!);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct AlignProbe<T>
        where T : struct
    {
        public byte Pad;
        public T Value;
    }
}
