"""The ``workbench`` owner: the worker's own interpreter and JPype (PYTHONMALLOC=malloc), told from the application's
mallocs (pyarrow, a program's JNI), on stacks as the reader writes them (frames and libraries from a real run)."""

from __future__ import annotations

from tests.unit.test_callsites import _recording, _snapshot
from workbench.protocol.callsites import RecordedSite, RecordedStack, Recording
from workbench.report.callsites import classify

PYTHON = RecordedStack(
    frames=["_start", "__libc_start_main_alias_2", "Py_BytesMain", "PyDict_SetDefault", "dictresize",
            "new_keys_object", "malloc"],
    kinds="NNNNNNN", libraries=["libpython3.11.so.1.0", "libc.so.6", "python3.11"])
JPYPE_BRIDGE = RecordedStack(
    frames=["org.jpype.JPypeContext.newWrapper", "org.jpype.manager.TypeFactoryNative.newWrapper",
            "Java_org_jpype_manager_TypeFactoryNative_newWrapper", "PyJPClass_hook", "PyJPMethod_create",
            "PyType_GenericAlloc"],
    kinds="JJNNNN", libraries=["libpython3.11.so.1.0", "_jpype.so"], java_frames=2)
PYARROW = RecordedStack(
    frames=["_start", "PyEval_EvalCode", "arrow::PoolBuffer::Reserve", "arrow::SystemAllocator::AllocateAligned",
            "posix_memalign"],
    kinds="NNCCN", libraries=["libarrow.so.1800", "libpython3.11.so.1.0", "libc.so.6"])
JSON_MODULE = RecordedStack(
    frames=["_start", "_PyEval_EvalFrameDefault", "PySequence_Tuple", "_PyTuple_Resize", "_PyObject_GC_Resize"],
    kinds="NNNNN", libraries=["libpython3.11.so.1.0", "_json.cpython-311-x86_64-linux-gnu.so", "libc.so.6",
                              "python3.11"])
PYARROW_MODULE = RecordedStack(
    frames=["_start", "__pyx_pw_7pyarrow_3lib_foreign_buffer", "arrow::Buffer::Make", "malloc"], kinds="NNCN",
    libraries=["lib.cpython-311-x86_64-linux-gnu.so", "libarrow.so.1800", "libpython3.11.so.1.0", "libc.so.6"])
APP_JNI = RecordedStack(
    frames=["Main.main", "Java_Main_native", "PyUnicode_New", "malloc"], kinds="JNNN",
    libraries=["libpython3.11.so.1.0", "libc.so.6"], java_frames=1)


def _owners(stack: RecordedStack) -> tuple[str, str, str]:
    recording = _recording(("end", [RecordedSite(stack=0, bytes=262144, count=1, steps={"-1": 262144})]))
    recording = Recording(schema=recording.schema, recording=recording.recording, stacks=[stack],
                          snapshots=recording.snapshots)
    by_label, _ = classify(recording, [_snapshot("end", None)], {}, arrow_leaked=False, collapsed={})
    [site] = by_label["end"].sites
    return site.owner, site.detail, site.name


def test_the_interpreters_own_objects_are_the_workbenchs() -> None:
    assert _owners(PYTHON) == ("workbench", "Python", "new_keys_object (Python)")
    assert _owners(JPYPE_BRIDGE) == ("workbench", "JPype", "PyType_GenericAlloc (JPype)")
    assert _owners(JSON_MODULE)[:2] == ("workbench", "Python")  # an extension module of the interpreter's


def test_pyarrow_and_an_applications_jni_stay_other() -> None:
    assert _owners(PYARROW)[0] == "other"
    assert _owners(PYARROW_MODULE)[0] == "other"
    assert _owners(APP_JNI)[0] == "other"
