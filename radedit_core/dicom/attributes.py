"""The DICOM attribute sets radedit copies from a source into a derived instance.

One list per IOD module (PS3.3): the patient and study modules, the exposure's
acquisition, positioning and technique attributes, the pixel spacing and the
acquisition equipment.  The writer (:mod:`radedit_core.dicom.writing`) copies
them unchanged and the conformance checks (:mod:`radedit_core.dicom.conformance`),
run when a source is read (:mod:`radedit_core.dicom.reading`), check the values
a derived instance will inherit: all three read the lists from here, and this
module imports none of them (only :mod:`radedit_core.dicom.sop`).
"""

from __future__ import annotations

from .sop import DX_SOP_CLASSES

PATIENT_MODULE = (
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "TypeOfPatientID",
    "PatientBirthDate", "PatientBirthTime", "PatientBirthDateInAlternativeCalendar",
    "PatientDeathDateInAlternativeCalendar", "PatientAlternativeCalendar", "PatientSex",
    "ReferencedPatientPhotoSequence", "QualityControlSubject", "ReferencedPatientSequence",
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "EthnicGroup", "EthnicGroupCodeSequence",
    "PatientComments", "PatientSpeciesDescription", "PatientSpeciesCodeSequence", "PatientBreedDescription",
    "PatientBreedCodeSequence", "BreedRegistrationSequence", "StrainDescription", "StrainNomenclature",
    "StrainCodeSequence", "StrainAdditionalInformation", "StrainStockSequence", "GeneticModificationsSequence",
    "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence", "SourcePatientGroupIdentificationSequence",
    "GroupOfPatientsIdentificationSequence",
)  # fmt: skip
CLINICAL_TRIAL_SUBJECT_MODULE = (
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    "ClinicalTrialProtocolEthicsCommitteeName", "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
)  # fmt: skip
GENERAL_STUDY_MODULE = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence", "StudyID", "AccessionNumber", "IssuerOfAccessionNumberSequence",
    "StudyDescription", "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "NameOfPhysiciansReadingStudy", "PhysiciansReadingStudyIdentificationSequence", "RequestingServiceCodeSequence",
    "ReferencedStudySequence", "ProcedureCodeSequence", "ReasonForPerformedProcedureCodeSequence",
)  # fmt: skip
PATIENT_STUDY_MODULE = (
    "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence", "PatientAge", "PatientSize",
    "PatientWeight", "PatientBodyMassIndex", "MeasuredAPDimension", "MeasuredLateralDimension",
    "PatientSizeCodeSequence", "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus",
    "LastMenstrualDate", "PatientState", "Occupation", "AdditionalPatientHistory", "AdmissionID",
    "IssuerOfAdmissionIDSequence", "ServiceEpisodeID", "IssuerOfServiceEpisodeIDSequence",
    "ServiceEpisodeDescription", "PatientSexNeutered", "ReasonForVisit", "ReasonForVisitCodeSequence",
)  # fmt: skip
CLINICAL_TRIAL_STUDY_MODULE = (
    "ClinicalTrialTimePointID", "ClinicalTrialTimePointDescription", "ClinicalTrialTimePointTypeCodeSequence",
    "LongitudinalTemporalOffsetFromEvent", "LongitudinalTemporalEventType", "ConsentForClinicalTrialUseSequence",
)  # fmt: skip
#: Every attribute of the patient- and study-level modules above, in order.
PATIENT_AND_STUDY_ATTRIBUTES = (
    PATIENT_MODULE + CLINICAL_TRIAL_SUBJECT_MODULE + GENERAL_STUDY_MODULE + PATIENT_STUDY_MODULE
    + CLINICAL_TRIAL_STUDY_MODULE
)  # fmt: skip

# The derived image shows the same exposure: acquisition, positioning and
# technique attributes still describe it and are copied when present.
GENERAL_SERIES_COPIED = ("Laterality", "BodyPartExamined", "PatientPosition")
GENERAL_ACQUISITION = ("AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime", "AcquisitionNumber")
GENERAL_IMAGE_COPIED = ("PatientOrientation", "RecognizableVisualFeatures", "ImageLaterality")
PIXEL_SPACING_ATTRIBUTES = (
    "PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing", "PixelSpacingCalibrationType",
    "PixelSpacingCalibrationDescription", "EstimatedRadiographicMagnificationFactor", "PixelAspectRatio",
)  # fmt: skip
#: Not in the CR/DX/SC IODs, but kept when an archive put them there: they place the grid.
PATIENT_GEOMETRY = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)
CR_SERIES_AND_IMAGE = (
    "ViewPosition", "FilterType", "CollimatorGridName", "FocalSpots", "PlateType", "PhosphorType",
    "KVP", "PlateID", "DistanceSourceToDetector", "DistanceSourceToPatient", "ExposureTime", "XRayTubeCurrent",
    "Exposure", "ExposureInuAs", "GeneratorPower", "AcquisitionDeviceProcessingDescription",
    "AcquisitionDeviceProcessingCode", "CassetteOrientation", "CassetteSize", "ExposuresOnPlate",
    "RelativeXRayExposure", "ExposureIndex", "TargetExposureIndex", "DeviationIndex", "Sensitivity",
)  # fmt: skip
DX_MODULES_COPIED = (
    # DX Anatomy Imaged
    "AnatomicRegionSequence", "PrimaryAnatomicStructureSequence",
    # DX Image (the pixel-describing ones are set explicitly)
    "AcquisitionDeviceProcessingDescription", "AcquisitionDeviceProcessingCode", "CalibrationImage",
    # DX Detector
    "DetectorType", "DetectorConfiguration", "DetectorDescription", "DetectorMode", "DetectorID",
    "DateOfLastDetectorCalibration", "TimeOfLastDetectorCalibration", "ExposuresOnDetectorSinceLastCalibration",
    "ExposuresOnDetectorSinceManufactured", "DetectorTimeSinceLastExposure", "DetectorActiveTime",
    "DetectorActivationOffsetFromExposure", "DetectorBinning", "DetectorElementPhysicalSize",
    "DetectorElementSpacing", "DetectorActiveShape", "DetectorActiveDimensions", "DetectorActiveOrigin",
    "DetectorManufacturerName", "DetectorManufacturerModelName", "DetectorConditionsNominalFlag",
    "DetectorTemperature", "FieldOfViewOrigin", "FieldOfViewRotation", "FieldOfViewHorizontalFlip",
    # DX Positioning
    "ProjectionEponymousNameCodeSequence", "ViewPosition", "ViewCodeSequence", "PatientOrientationCodeSequence",
    "PatientGantryRelationshipCodeSequence", "DistanceSourceToPatient", "DistanceSourceToDetector",
    "PositionerType", "PositionerPrimaryAngle", "PositionerSecondaryAngle", "DetectorPrimaryAngle",
    "DetectorSecondaryAngle", "ColumnAngulation", "TableType", "TableAngle", "BodyPartThickness",
    "CompressionForce",
    # X-Ray Acquisition Dose, Generation, Filtration, Grid
    "KVP", "XRayTubeCurrent", "XRayTubeCurrentInuA", "ExposureTime", "ExposureTimeInuS", "Exposure",
    "ExposureInuAs", "DistanceSourceToEntrance", "ImageAndFluoroscopyAreaDoseProduct", "EntranceDose",
    "EntranceDoseInmGy", "ExposedArea", "OrganDose", "OrganExposed", "HalfValueLayer", "XRayOutput",
    "CommentsOnRadiationDose", "RelativeXRayExposure", "ExposureIndex", "TargetExposureIndex", "DeviationIndex",
    "FilterType", "FilterMaterial", "FilterThicknessMinimum", "FilterThicknessMaximum", "FocalSpots",
    "AnodeTargetMaterial", "RectificationType", "GeneratorPower", "Grid", "GridAbsorbingMaterial",
    "GridSpacingMaterial", "GridThickness", "GridPitch", "GridAspectRatio", "GridPeriod", "GridFocalDistance",
)  # fmt: skip
ACQUISITION_EQUIPMENT = (
    "Manufacturer", "InstitutionName", "InstitutionAddress", "StationName", "InstitutionalDepartmentName",
    "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions",
)  # fmt: skip
#: Body Part Examined terms of unpaired structures (PS3.16 Annex L: laterality "U"),
#: for which General Series Laterality (Type 2C, PS3.3 C.7.3.1) must be absent.
UNPAIRED_BODY_PARTS = frozenset(
    """ABDOMEN ABDOMENPELVIS AORTA BACK BLADDER BRAIN CEREBELLUM CSPINE CTSPINE CERVIX CHEST CHESTABDOMEN
    CHESTABDPELVIS CIRCLEOFWILLIS COCCYX COLON CORONARYARTERY DUODENUM WHOLEBODY ESOPHAGUS FACE GALLBLADDER HEAD
    HEADNECK HEART ILEUM ILIUM JAW JEJUNUM LARYNX LIVER LSPINE LSSPINE MAXILLA MEDIASTINUM MOUTH NECK NECKCHEST
    NECKCHESTABDOMEN NECKCHESTABDPELV NOSE PANCREAS PELVIS PENIS PHARYNX PROSTATE RECTUM SKULL SPINE SPLEEN SSPINE
    STERNUM STOMACH THYMUS THYROID TONGUE TRACHEA TSPINE TLSPINE URETER URETHRA UTERUS VAGINA VULVA""".split()
)


#: Attributes outside those modules that a derived instance also carries from its source.
OTHER_COPIED = ("TimezoneOffsetFromUTC", "AcquisitionContextSequence", "PixelPaddingValue", "PixelPaddingRangeLimit")


def copied_keywords(sop_class: str) -> list[str]:
    """Keywords of the source attributes a derived instance of ``sop_class`` carries unchanged."""
    keywords = list(PATIENT_AND_STUDY_ATTRIBUTES)
    keywords += GENERAL_SERIES_COPIED + GENERAL_ACQUISITION + GENERAL_IMAGE_COPIED
    keywords += PIXEL_SPACING_ATTRIBUTES + PATIENT_GEOMETRY
    keywords += DX_MODULES_COPIED if sop_class in DX_SOP_CLASSES else CR_SERIES_AND_IMAGE
    keywords += OTHER_COPIED
    return list(dict.fromkeys(keywords))
