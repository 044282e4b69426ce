"""The Slicer, CTK, MRML and VTK names the RadEdit module calls, and where to look each up.

``tests/test_slicer_api.py`` reads the module's code and requires every name
it calls to be listed here; ``scripts/slicer_api_refs.py`` looks each listed
name up in Slicer's (and CTK's) source at every supported release and writes
the declaring ``path:line`` to ``tests/slicer_api_refs.json``.
"""

#: The supported Slicer releases (5.6 and later): the oldest and newest patch checked of each.
SLICER_TAGS = ("v5.6.2", "v5.8.1", "v5.10.0", "v5.12.3")

_UTIL = "Base/Python/slicer/util.py"
_SLM = "Base/Python/slicer/ScriptedLoadableModule.py"
_LAYOUT = "Libs/MRML/Widgets/qMRMLLayoutManager.h"
_SLICE_WIDGET = "Libs/MRML/Widgets/qMRMLSliceWidget.h"


def _util(name: str) -> tuple[str, str]:
    return (_UTIL, rf"^(def|class) {name}\b")


#: Names that exist only in a running Slicer (the application, its GUI, its Python package):
#: name -> (file in Slicer's repository, a regular expression for the declaring line).
SLICER_NAMES = {
    **{
        f"slicer.util.{n}": _util(n)
        for n in (
            "NodeModify", "addVolumeFromArray", "arrayFromVolume", "childWidgetVariables", "confirmOkCancelDisplay",
            "errorDisplay", "getModuleWidget", "loadUI", "pip_install", "showStatusMessage", "startupEnvironment",
            "tryWithErrorDisplay", "updateSegmentBinaryLabelmapFromArray", "VTKObservationMixin", "WaitCursor",
        )
    },
    "VTKObservationMixin.addObserver": (_UTIL, r"^    def addObserver\("),
    "VTKObservationMixin.removeObserver": (_UTIL, r"^    def removeObserver\("),
    "VTKObservationMixin.removeObservers": (_UTIL, r"^    def removeObservers\("),
    "slicer.app.temporaryPath": ("Base/QTCore/qSlicerCoreApplication.h", r"Q_PROPERTY\(QString temporaryPath"),
    "slicer.app.commandOptions": ("Base/QTGUI/qSlicerApplication.h", r"commandOptions\(\)"),
    "slicer.app.commandOptions().testingEnabled": ("Base/QTCore/qSlicerCoreCommandOptions.h", r"testingEnabled"),
    "slicer.app.layoutManager": ("Base/QTGUI/qSlicerApplication.h", r"layoutManager\(\)"),
    "slicer.mrmlScene": ("Base/Python/slicer/__init__.py", r"py:attribute:: mrmlScene"),
    "slicer.dicomDatabase": ("Modules/Scripted/DICOM/DICOM.py", r"slicer\.dicomDatabase = "),
    "slicer.modules.segmentations": ("Modules/Loadable/Segmentations/qSlicerSegmentationsModule.h", r"class .*qSlicerSegmentationsModule\b"),
    "slicer.i18n.tr": ("Base/Python/slicer/i18n.py", r"^def tr\("),
    "slicer.i18n.translate": ("Base/Python/slicer/i18n.py", r"^def translate\("),
    "slicer.parameterNodeWrapper.parameterNodeWrapper": ("Base/Python/slicer/parameterNodeWrapper/wrapper.py", r"^def parameterNodeWrapper\("),
    "slicer.parameterNodeWrapper.Choice": ("Base/Python/slicer/parameterNodeWrapper/validators.py", r"^class Choice\b"),
    "slicer.parameterNodeWrapper.WithinRange": ("Base/Python/slicer/parameterNodeWrapper/validators.py", r"^class WithinRange\b"),
    "parameterNode.connectGui": ("Base/Python/slicer/parameterNodeWrapper/wrapper.py", r'"connectGui"'),
    "parameterNode.disconnectGui": ("Base/Python/slicer/parameterNodeWrapper/wrapper.py", r'"disconnectGui"'),
    "ScriptedLoadableModuleWidget.resourcePath": (_SLM, r"def resourcePath\("),
    "ScriptedLoadableModuleLogic.getParameterNode": (_SLM, r"def getParameterNode\("),
    "ScriptedLoadableModuleTest.delayDisplay": (_SLM, r"def delayDisplay\("),
    "DICOMUtils.importDicom": ("Modules/Scripted/DICOMLib/DICOMUtils.py", r"^def importDicom\("),
    "DICOMUtils.TemporaryDICOMDatabase": ("Modules/Scripted/DICOMLib/DICOMUtils.py", r"^class TemporaryDICOMDatabase\b"),
    "DICOMUtils.loadSeriesByUID": ("Modules/Scripted/DICOMLib/DICOMUtils.py", r"^def loadSeriesByUID\("),
    "layoutManager.layoutLogic": (_LAYOUT, r"layoutLogic\(\)"),
    "layoutManager.setLayout": (_LAYOUT, r"void setLayout\("),
    "layoutManager.sliceWidget": (_LAYOUT, r"sliceWidget\(const QString"),
    "sliceWidget.mrmlSliceCompositeNode": (_SLICE_WIDGET, r"mrmlSliceCompositeNode\(\)"),
    "sliceWidget.mrmlSliceNode": (_SLICE_WIDGET, r"mrmlSliceNode\(\)"),
    "sliceWidget.sliceLogic": (_SLICE_WIDGET, r"sliceLogic\(\)"),
}

#: CTK names (looked up at the CTK commit each Slicer release builds, SuperBuild/External_CTK.cmake).
CTK_NAMES = {
    "ctkDICOMDatabase.isOpen": ("Libs/DICOM/Core/ctkDICOMDatabase.h", r"Q_PROPERTY\(bool isOpen"),
    "ctkDICOMDatabase.fileForInstance": ("Libs/DICOM/Core/ctkDICOMDatabase.h", r"fileForInstance\("),
    "ctkPathLineEdit.Files": ("Libs/Widgets/ctkPathLineEdit.h", r"\bFiles\s*="),
    "ctkPathLineEdit.Executable": ("Libs/Widgets/ctkPathLineEdit.h", r"\bExecutable\s*="),
    "ctkPathLineEdit.Dirs": ("Libs/Widgets/ctkPathLineEdit.h", r"\bDirs\s*="),
}

#: Every MRML/VTK method (CamelCase) the module calls -> the class that declares it.
#: Slicer's classes are looked up in each release's headers; VTK's in slicer-core's VTK.
MRML_METHODS = {
    "AddEmptySegment": "vtkSegmentation",
    "AddLayoutDescription": "vtkMRMLLayoutNode",
    "AddNewNodeByClass": "vtkMRMLScene",
    "Clear": "vtkMRMLScene",
    "CopyOrientation": "vtkMRMLVolumeNode",
    "CreateDefaultDisplayNodes": "vtkMRMLDisplayableNode",
    "ExportSegmentsToLabelmapNode": "vtkSlicerSegmentationsModuleLogic",
    "FitSliceToAll": "vtkMRMLSliceLogic",
    "GenerateUniqueName": "vtkMRMLScene",
    "GetAttribute": "vtkMRMLNode",
    "GetColorNodeID": "vtkMRMLDisplayNode",
    "GetDimensions": "vtkImageData",
    "GetDisplayNode": "vtkMRMLDisplayableNode",
    "GetElement": "vtkMatrix4x4",
    "GetFirstNodeByClass": "vtkMRMLScene",
    "GetID": "vtkMRMLNode",
    "GetIJKToRASMatrix": "vtkMRMLVolumeNode",
    "GetImageData": "vtkMRMLVolumeNode",
    "GetInvertDisplayScalarRange": "vtkMRMLScalarVolumeDisplayNode",
    "GetItemByDataNode": "vtkMRMLSubjectHierarchyNode",
    "GetItemParent": "vtkMRMLSubjectHierarchyNode",
    "GetLayoutNode": "vtkMRMLLayoutLogic",
    "GetLevel": "vtkMRMLScalarVolumeDisplayNode",
    "GetMTime": "vtkObject",
    "GetName": "vtkMRMLNode",
    "GetNodeByID": "vtkMRMLScene",
    "GetNthDisplayNodeID": "vtkMRMLDisplayableNode",
    "GetNthNode": "vtkMRMLScene",
    "GetNthSegment": "vtkSegmentation",
    "GetNthSegmentID": "vtkSegmentation",
    "GetNumberOfComponents": "vtkAbstractArray",
    "GetNumberOfDisplayNodes": "vtkMRMLDisplayableNode",
    "GetNumberOfNodes": "vtkMRMLScene",
    "GetNumberOfSegments": "vtkSegmentation",
    "GetPointData": "vtkDataSet",
    "GetRepresentation": "vtkSegment",
    "GetScalars": "vtkDataSetAttributes",
    "GetSegment": "vtkSegmentation",
    "GetSegmentation": "vtkMRMLSegmentationNode",
    "GetSourceRepresentationName": "vtkSegmentation",
    "GetSubjectHierarchyNode": "vtkMRMLScene",
    "GetWindow": "vtkMRMLScalarVolumeDisplayNode",
    "InsertNextValue": "vtkStringArray",
    "IsA": "vtkObjectBase",
    "IsLayoutDescription": "vtkMRMLLayoutNode",
    "ReadData": "vtkMRMLStorageNode",
    "RemoveNode": "vtkMRMLScene",
    "RotateToVolumePlane": "vtkMRMLSliceNode",
    "SetAndObserveColorNodeID": "vtkMRMLDisplayNode",
    "SetAndObserveImageData": "vtkMRMLVolumeNode",
    "SetAttribute": "vtkMRMLNode",
    "SetAutoWindowLevel": "vtkMRMLScalarVolumeDisplayNode",
    "SetBackgroundVolumeID": "vtkMRMLSliceCompositeNode",
    "SetDimensions": "vtkImageData",
    "SetFileName": "vtkMRMLStorageNode",
    "SetForegroundVolumeID": "vtkMRMLSliceCompositeNode",
    "SetInvertDisplayScalarRange": "vtkMRMLScalarVolumeDisplayNode",
    "SetItemParent": "vtkMRMLSubjectHierarchyNode",
    "SetLabelVolumeID": "vtkMRMLSliceCompositeNode",
    "SetReferenceImageGeometryParameterFromVolumeNode": "vtkMRMLSegmentationNode",
    "SetScalars": "vtkDataSetAttributes",
    "SetSingleFile": "vtkMRMLVolumeArchetypeStorageNode",
    "SetUseCompression": "vtkMRMLStorageNode",
    "SetWindowLevel": "vtkMRMLScalarVolumeDisplayNode",
    "WriteData": "vtkMRMLStorageNode",
    "GetParentTransformNode": "vtkMRMLTransformableNode",
    "GetSegmentationBinaryLabelmapRepresentationName": "vtkSegmentationConverter",
    "GetExtent": "vtkImageData",
    "GetImageToWorldMatrix": "vtkOrientedImageData",
    "GetLabelValue": "vtkSegment",
}

#: Methods newer than the oldest supported release: the module calls them only behind a
#: ``hasattr(obj, "<name>")`` check (the test checks that), and the refs hold null where absent.
OPTIONAL_METHODS = {"GetInvertDisplayScalarRange", "SetInvertDisplayScalarRange"}

#: Qt's own members reached through Slicer's objects (qSlicerApplication is a QApplication).
QT_NAMES = {"slicer.app.processEvents"}
